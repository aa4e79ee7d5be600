"""Reading a ChatGPT export: every era's layout streamed into conversations, then chunks.

- :mod:`.sources`: where the conversations live (zip, JSON file, directory, shards);
  :mod:`.zip_salvage` reads a zip whose end is missing.
- :mod:`.reader`: streams :class:`.models.Conversation` objects in flat memory.
- :mod:`.active_thread`, :mod:`.message_text`, :mod:`.canvas`, :mod:`.citations`,
  :mod:`.timestamps`, :mod:`.text_safety`: what one conversation's messages are, as text.
- :mod:`.person_notes`: custom instructions and memory notes kept on the import.
- :mod:`.chunker`: counted messages into retrieval chunks.
"""
