"""Crash-resume: the daily cycle killed with SIGKILL at random points, and run again."""
