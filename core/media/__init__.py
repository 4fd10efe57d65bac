"""Voice notes, audio and other files turned into what the model reads (issue 15).

``limits`` names the size limits that apply before anything is fetched; ``transcribe`` speaks
to ``/v1/audio/transcriptions``; ``voice`` is the feature that reads voice notes and audio and
answers them like text.
"""
