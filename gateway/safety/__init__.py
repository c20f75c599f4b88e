"""Clinical safety.

hazards.py        the hazard log's model (schemas/safety/hazards.json) and the check that holds it
                  to the code; safety_case.py makes docs/safety/safety-case.md from it
watcher.py        the wait watcher: referrals waiting at a Task status longer than their service
                  allows (limits.py over calendar.py) become breaches; notices.py builds what a
                  breach publishes (status event, escalation copy to the fallback)
dry_run.py        `routing check`: recent referrals routed again through a candidate configuration
configuration.py  which configuration is in force, and who loaded it, in the audit trail
"""
