"""A run's machinery, shared by the stages: what a task knows of its run (``runtime``,
``window``, ``settings``), how writers take turns and judge staleness (``locks``,
``freshness``), OneFile's shared call budget (``call_budget``: the budget in the staging
database; ``budget_limiter``: the hook's limiter over it; ``budget_wait_log``: its waits,
said), dry runs (``dry_run``), and what a run tells the team: its summary (``summary``,
``task_tries``, ``summary_labels``), its thresholds (``thresholds``), its note
(``note_text`` writes it, ``note`` sets it in the Airflow UI) and the failure mail
(``alerts``, ``alert_mail``).
"""
