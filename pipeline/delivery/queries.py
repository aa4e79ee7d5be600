"""Every query the relay and replay run, named and commented.

The relay holds no row lock while a POST is in flight (the receiver updates that very row to
acknowledge it): an event is claimed by pushing its ``next_attempt_at`` past the time one POST
may take, and released (or marked relayed) in a statement of its own afterwards.
"""

from pipeline.queries import QUERIES

CLAIM_DUE = QUERIES["relay_claim_due"]

LOG_ATTEMPT = QUERIES["relay_log_attempt"]

MARK_RELAYED = QUERIES["relay_mark_relayed"]

RELEASE = QUERIES["relay_release"]

NEXT_DUE = QUERIES["relay_next_due"]

LOGGED_EVENTS = QUERIES["replay_logged_events"]

JOB_EVENTS = QUERIES["replay_job_events"]
