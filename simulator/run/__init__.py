"""The run itself: the Environment/runner, behaviours (virtual devices), checks, monitoring, the session against a target, progress."""
