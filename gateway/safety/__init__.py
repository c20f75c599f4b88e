"""Clinical safety: the hazard log held to the code (hazards.py), the safety case made from it
(safety_case.py), and the wait watcher that notices an urgent referral nobody picked up (watcher.py,
over limits.py and calendar.py). The log itself is data: schemas/safety/hazards.json."""
