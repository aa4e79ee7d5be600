"""Delivery of outbox events: what an event and an attempt are, how a request is signed,
the transports (straight HTTP, or Svix), the relay that drives them, and replay.

Modules import downwards only: ``types`` <- ``signing`` <- ``http_transport`` /
``svix_transport`` <- ``health`` / ``relay`` <- ``replay``; nothing here imports local mode,
the CLI or the stages, so no import circle can run through this package.
"""
