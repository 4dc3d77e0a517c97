"""Certificates in the controller: load and describe X.509, open and re-wrap PKCS#12, the pure checks,
the CA configuration profile, lab issuing, and the database side (`store`)."""
