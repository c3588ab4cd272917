"""Column combining: grouping policies, conflict rules, and the packed form."""
