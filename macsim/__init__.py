"""macsim: a fleet of simulated Macs reachable over real SSH on loopback.

It exists because no Mac can run here. It must behave like macOS strictly (usage errors, root checks,
messages and exit codes of the real tools) and must not share code with the service it tests.
"""
