"""Who may call the gateway: partners' OAuth2 client-credentials tokens, people's sessions, the route
policy (policy.py, one table), rate limits, and which referrals a principal sees (access.py).

Must not: import the runtime or an HTTP surface (gateway/api); the guard is handed what it needs.
"""
