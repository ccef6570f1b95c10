"""`carelink`: the operators' command-line tool (topics, lag, dead letters, traces, outboxes)."""
