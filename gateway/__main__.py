"""`python -m gateway` is the `referral-gateway` command."""

from gateway.cli import main

main()
