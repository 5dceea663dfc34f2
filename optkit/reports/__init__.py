"""Reports: report.json for machines, report.md for people and CI summaries, gates for exit codes."""
