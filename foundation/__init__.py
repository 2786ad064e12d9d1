"""The bottom layer: atomic file writes, packaged resources and the command process guard; imports nothing of ours."""
