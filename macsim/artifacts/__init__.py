"""Files the simulated fleet is exercised with: certificates (certs.py) and, elsewhere, DMGs."""
