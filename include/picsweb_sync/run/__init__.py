"""A run's machinery, shared by the stages: what a task knows of its run (``runtime``,
``window``, ``settings``), how writers take turns and judge staleness (``locks``,
``freshness``), OneFile's shared call budget (``call_budget``, ``budget_wait_log``), dry runs
(``dry_run``), and what a run tells the team (``summary``, ``summary_labels``, ``task_tries``,
``note``, ``alerts``, ``alert_mail``).
"""
