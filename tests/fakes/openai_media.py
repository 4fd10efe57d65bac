"""The media endpoints of the fake OpenAI server: transcription (and, as they land, speech,
image generation and image content parts), registered on :class:`~tests.fakes.openai_server.FakeOpenAI`.

Modelled on the OpenAI API reference and openai-python's types
(``openai/resources/audio/transcriptions.py``, ``types/audio/transcription_create_params.py``):

* ``POST /v1/audio/transcriptions`` is ``multipart/form-data`` with a ``file`` part and ``model``
  (both required; a missing one is a 400 ``invalid_request_error`` naming the ``param``),
  optional ``language`` (ISO-639-1), ``prompt``, ``response_format`` (``json`` default →
  ``{"text": ...}``; ``text`` → the bare text; ``verbose_json`` adds ``duration``).
* Files are limited to 25 MB: larger bodies get 413 "Maximum content size limit (26214400)
  exceeded".
* The file name's extension must be one of flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm
  (400 "Invalid file format. Supported formats: [...]"); content that does not decode is a 400
  "The audio file could not be decoded or its format is not supported."

``POST /v1/images/generations`` (``types/image_generate_params.py``) is JSON: ``prompt`` required
(400 ``missing_required_parameter``), ``n`` 1–10, ``size`` one of the documented sizes or
``auto``; the answer is ``{"created", "data": [{"b64_json"}], "usage"}`` (gpt-image models always
send ``b64_json``; DALL·E ones only with ``response_format="b64_json"``, else a ``url``). A
prompt containing "forbidden" is refused with 400 ``content_policy_violation``, as the safety
system does.

``POST /v1/audio/speech`` (``types/audio/speech_create_params.py``) is JSON with ``model``,
``input`` (at most 4,096 characters) and ``voice`` required, ``response_format`` one of mp3, opus,
aac, flac, wav, pcm; the answer is the audio itself (``opus`` → an OGG stream, ``audio/ogg``).

Image content parts in ``POST /v1/chat/completions`` (``ChatCompletionContentPartImageParam``:
``{"type": "image_url", "image_url": {"url": ..., "detail": "auto" | "low" | "high"}}``) are
checked as the API does before the fake answers: an unknown part ``type`` is 400 ``invalid_value``
naming ``messages[i].content[j].type``; a text part without ``text`` is 400
``missing_required_parameter``; an image part outside a ``user`` message is 400; a data URL that is
not ``data:image/(png|jpeg|gif|webp);base64,`` or whose bytes do not decode as that image is 400
``invalid_image_format`` ("You uploaded an unsupported image..."); an image over 20 MB is 400.
Accepted images are kept in :attr:`FakeMedia.images` as ``(format, width, height)``.

The fake "decodes" audio by its magic bytes (OggS, ID3 / MPEG frame sync, RIFF…WAVE, fLaC,
EBML, an ``ftyp`` box, an AAC ADTS header) and "hears" the UTF-8 text that follows the header,
so a test makes a voice note that says "hello" with :func:`speech`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

TRANSCRIPTION_LIMIT = 25 * 1024 * 1024
AUDIO_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")

_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"OggS"),
    (0, b"ID3"),
    (0, b"\xff\xfb"),
    (0, b"fLaC"),
    (0, b"\x1a\x45\xdf\xa3"),
    (4, b"ftyp"),
    (0, b"\xff\xf1"),
    (0, b"\xff\xf9"),
)
_HEADERS = {"ogg": b"OggS", "mp3": b"ID3", "aac": b"\xff\xf1", "m4a": b"\x00\x00\x00\x18ftyp", "wav": b"RIFF"}


def speech(words: str, container: str = "ogg") -> bytes:
    """Audio bytes the fake hears as ``words`` (``container``: ogg, mp3, aac, m4a, wav)."""
    head = _HEADERS[container]
    if container == "wav":
        head = b"RIFF\x00\x00\x00\x00WAVE"
    return head + words.encode()


def _heard(data: bytes) -> str | None:
    """The words in fake audio (up to the first NUL byte, which is silence), or None when it does
    not decode."""
    start = 12 if data[:4] == b"RIFF" and data[8:12] == b"WAVE" else None
    for offset, magic in _MAGIC:
        if start is None and data[offset : offset + len(magic)] == magic:
            start = offset + len(magic)
    if start is None:
        return None
    return data[start:].split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return web.json_response(body, status=status)


@dataclass
class Transcription:
    """One transcription request as the fake received it."""

    model: str
    filename: str
    content_type: str
    size: int
    language: str | None
    response_format: str


IMAGE_LIMIT = 20 * 1024 * 1024
IMAGE_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536", "256x256", "512x512", "1792x1024", "1024x1792")
PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
_DATA_URL = re.compile(r"data:image/(png|jpeg|gif|webp);base64,(.*)\Z", re.DOTALL)
_UNSUPPORTED_IMAGE = (
    "You uploaded an unsupported image. Please make sure your image is below 20 MB in size and is of one "
    "the following formats: ['png', 'jpeg', 'gif', 'webp']."
)


def _part_error(messages: Any) -> web.Response | None:
    """The API's 400 for the first malformed content part, if any."""
    if not isinstance(messages, list):
        return None
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES:
                supported = ", ".join(f"'{t}'" for t in PART_TYPES)
                return _error(400, f"Invalid value: '{kind}'. Supported values are: {supported}.", f"{where}.type",
                              "invalid_value")  # fmt: skip
            if kind == "text" and not isinstance(part.get("text"), str):
                return _error(400, f"Missing required parameter: '{where}.text'.", f"{where}.text",
                              "missing_required_parameter")  # fmt: skip
            if kind != "image_url":
                continue
            if message.get("role") != "user":
                role = message.get("role")
                return _error(400, f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role "
                              f"'user', but this message with role '{role}' contains an image URL.",
                              f"messages[{i}]", "invalid_value")  # fmt: skip
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                return _error(400, f"Missing required parameter: '{where}.image_url.url'.",
                              f"{where}.image_url.url", "missing_required_parameter")  # fmt: skip
            if image.get("detail", "auto") not in ("auto", "low", "high"):
                return _error(400, f"Invalid value: '{image.get('detail')}'. Supported values are: 'auto', 'low', "
                              "and 'high'.", f"{where}.image_url.detail", "invalid_value")  # fmt: skip
            if url.startswith(("http://", "https://")):
                continue
            found = _DATA_URL.match(url)
            if found is None:
                return _error(400, _UNSUPPORTED_IMAGE, None, "invalid_image_format")
            try:
                data = base64.b64decode(found.group(2), validate=True)
            except (binascii.Error, ValueError):
                return _error(400, _UNSUPPORTED_IMAGE, None, "invalid_image_format")
            if len(data) > IMAGE_LIMIT:
                return _error(400, f"Invalid '{where}.image_url.url'. Image exceeds the 20 MB limit.",
                              f"{where}.image_url.url", "image_too_large")  # fmt: skip
            try:
                with Image.open(io.BytesIO(data)) as decoded:
                    decoded.verify()
            except (UnidentifiedImageError, OSError, SyntaxError):
                return _error(400, _UNSUPPORTED_IMAGE, None, "invalid_image_format")
    return None


@dataclass
class FakeMedia:
    """What the media endpoints received, and how they should fail next."""

    transcriptions: list[Transcription] = field(default_factory=list)
    images: list[tuple[str, int, int]] = field(default_factory=list)
    """Every accepted image part as ``(format, width, height)``."""
    generations: list[dict[str, Any]] = field(default_factory=list)
    """Every image generation request body."""
    speeches: list[dict[str, Any]] = field(default_factory=list)
    """Every speech request body."""

    async def speech_endpoint(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/audio/speech``: the spoken input as audio bytes (the fake's "audio" is the text)."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        self.speeches.append(body)
        if self.failures:
            return self.failures.pop(0)
        for name in ("model", "input", "voice"):
            if not body.get(name):
                return _error(400, f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        if len(body["input"]) > 4096:
            message = f"Invalid 'input': string too long. Expected a maximum length of 4096, got {len(body['input'])}."
            return _error(400, message, "input", "string_above_max_length")
        fmt = body.get("response_format", "mp3")
        types = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                 "wav": "audio/wav", "pcm": "audio/pcm"}  # fmt: skip
        if fmt not in types:
            return _error(400, f"Invalid value: '{fmt}'. Supported values are: {list(types)}.", "response_format",
                          "invalid_value")  # fmt: skip
        head = {"opus": b"OggS", "mp3": b"ID3", "aac": b"\xff\xf1", "flac": b"fLaC"}.get(fmt, b"RIFF")
        return web.Response(body=head + body["input"].encode(), content_type=types[fmt])

    async def generations_endpoint(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/images/generations``."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        self.generations.append(body)
        if self.failures:
            return self.failures.pop(0)
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return _error(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            return _error(400, f"Invalid 'n': expected a value between 1 and 10, got {n}.", "n", "invalid_value")
        size = body.get("size", "auto")
        if size not in IMAGE_SIZES:
            return _error(
                400, f"Invalid value: '{size}'. Supported values are: {IMAGE_SIZES}.", "size", "invalid_value"
            )
        if "forbidden" in body["prompt"].lower():
            message = "Your request was rejected as a result of our safety system."
            return _error(400, message, None, "content_policy_violation")
        model = str(body.get("model") or "dall-e-2")
        out = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 120, 200)).save(out, "PNG")
        picture = base64.b64encode(out.getvalue()).decode()
        if model.startswith("dall-e") and body.get("response_format") != "b64_json":
            data = [{"url": "https://images.example/generated.png", "revised_prompt": body["prompt"]}]
        else:
            data = [{"b64_json": picture, "revised_prompt": None} for _ in range(n)]
        usage = {"input_tokens": 10, "output_tokens": 1056, "total_tokens": 1066}
        return web.json_response({"created": 1700000000, "data": data, "usage": usage})

    failures: list[web.Response] = field(default_factory=list)

    def fail_next(self, status: int, message: str, code: str | None = None) -> None:
        """Answer the next media request with an error body (e.g. 429 rate limit)."""
        self.failures.append(_error(status, message, code=code))

    async def transcriptions_endpoint(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/audio/transcriptions``."""
        if request.content_length is not None and request.content_length > TRANSCRIPTION_LIMIT + 64 * 1024:
            return _error(413, f"Maximum content size limit ({TRANSCRIPTION_LIMIT}) exceeded")
        if request.content_type != "multipart/form-data":
            return _error(400, "Could not parse multipart form", param=None)
        form = await request.post()
        upload = form.get("file")
        model = form.get("model")
        if not isinstance(upload, web.FileField):
            return _error(400, "you must provide a file", param="file")
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter", param="model")
        data = upload.file.read()
        language = form.get("language")
        fmt = str(form.get("response_format") or "json")
        self.transcriptions.append(
            Transcription(
                model, upload.filename, upload.content_type, len(data),
                language if isinstance(language, str) else None, fmt,
            )
        )  # fmt: skip
        if self.failures:
            return self.failures.pop(0)
        if len(data) > TRANSCRIPTION_LIMIT:
            return _error(413, f"Maximum content size limit ({TRANSCRIPTION_LIMIT}) exceeded")
        if isinstance(language, str) and (len(language) != 2 or not language.isalpha()):
            return _error(
                400,
                f"Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format.",
                "language",
            )
        extension = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        if extension not in AUDIO_FORMATS:
            return _error(400, f"Invalid file format. Supported formats: {list(AUDIO_FORMATS)}", "file")
        text = _heard(data)
        if text is None:
            return _error(400, "The audio file could not be decoded or its format is not supported.", "file")
        if fmt == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        body: dict[str, Any] = {"text": text}
        if fmt == "verbose_json":
            body.update(task="transcribe", language="english", duration=round(len(text.split()) / 2.5, 2))
        return web.json_response(body)

    @web.middleware
    async def check_parts(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Reject malformed content parts of chat requests before the chat handler sees them."""
        if request.method == "POST" and request.path == "/v1/chat/completions" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                refused = _part_error(body.get("messages"))
                if refused is not None:
                    return refused
                self._note_images(body.get("messages"))
        response: web.StreamResponse = await handler(request)
        return response

    def _note_images(self, messages: Any) -> None:
        for message in messages if isinstance(messages, list) else ():
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else ():
                url = part.get("image_url", {}).get("url", "") if part.get("type") == "image_url" else ""
                found = _DATA_URL.match(url)
                if found is not None:
                    with Image.open(io.BytesIO(base64.b64decode(found.group(2)))) as image:
                        self.images.append((str(image.format), image.width, image.height))


def install(app: web.Application) -> FakeMedia:
    """Register the media endpoints on the fake's application (before it starts); returns their state."""
    media = FakeMedia()
    app.router.add_post("/v1/audio/transcriptions", media.transcriptions_endpoint)
    app.router.add_post("/v1/images/generations", media.generations_endpoint)
    app.router.add_post("/v1/audio/speech", media.speech_endpoint)
    app.middlewares.append(media.check_parts)
    return media
