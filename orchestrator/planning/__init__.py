"""Planning a run: what to do where, decided from the database and the rules alone (no SSH).

- `request`: what the operator asked for (`DeployRequest`, `WaveRequest`, `UpgradeOptions`) and the
  planned run (`PlannedRun`), `PlanningError`;
- `params`: where each parameter comes from (flag > group variables > configuration > artifact store);
- `refusals`: the per-device checks made offline (client certificate, another run's lock);
- `plans`: the plan variants (install, upgrade, converge; uninstall, reconfigure, start/stop/restart,
  logs, check), each adding a pending Run and its DeviceJobs.

Once planned, a run's status is changed only by `orchestrator.runs` (start, gate, finish, halt, resume).
"""
