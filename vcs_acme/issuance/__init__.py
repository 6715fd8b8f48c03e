"""Obtaining certificates over ACME (RFC 8555).

``network`` signs and sends requests, ``client`` speaks the protocol's resources (orders,
authorizations, renewal information), ``problems`` turns CA answers into one-line errors,
``account`` keeps the account, ``http01`` answers challenges, ``chains`` picks a chain, and
``order`` runs one order from start to certificate with the ``solvers`` each name needs:
HTTP-01 (``http01``) or DNS-01 (``dns01``: RFC 2136 updates or a hook).
"""
