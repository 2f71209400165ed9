"""Everything that speaks Meta's language: Graph API client, webhook signatures and payloads,
the error table and usage headers.

Plain Python on purpose: no Django imports and no reads of project settings, so the package can
be used by any app (and by the Graph stand-in) with configuration passed in as arguments.
"""
