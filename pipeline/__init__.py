"""soulprint-import: a ChatGPT export becomes searchable memory and a soulprint."""

__version__ = "0.1.0"
