"""The flow/task runtime: runs user code and records every run and state change."""
