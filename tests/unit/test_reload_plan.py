"""What a reload applies and what it keeps until a restart (eai._reload.plan_reload)."""

from __future__ import annotations

from eai._reload import plan_reload
from eai.config import load_config_text

BASE = """
engine:
  data_dir: /srv/eai/var
listeners:
  - name: in
    type: mllp
    bind: 127.0.0.1:2575
destinations:
  - name: a
    type: mllp
    host: 127.0.0.1
    port: 3001
  - name: b
    type: mllp
    host: 127.0.0.1
    port: 3002
routes:
  - name: r
    from: [in]
    to: [a]
"""


def _config(text: str):  # noqa: ANN202 - the registry-built model
    return load_config_text(text, "routes.yaml", env={})


def test_destinations_added_changed_removed_and_routes_applied():
    new_text = (
        BASE.replace("port: 3001", "port: 3011")
        .replace("  - name: b\n    type: mllp\n    host: 127.0.0.1\n    port: 3002\n", "")
        .replace(
            "routes:", "  - name: c\n    type: mllp\n    host: 127.0.0.1\n    port: 3003\nroutes:"
        )
        .replace("to: [a]", "to: [a, c]")
    )
    plan = plan_reload(_config(BASE), _config(new_text))
    assert (plan.added, plan.changed, plan.removed) == (("c",), ("a",), ("b",))
    assert plan.restart_needed == ()
    assert plan.config.routes[0].to == ("a", "c")
    assert "destinations added: c" in plan.summary()


def test_engine_and_listener_changes_are_kept_and_named():
    new_text = BASE.replace("/srv/eai/var", "/srv/other").replace(":2575", ":2580")
    old = _config(BASE)
    plan = plan_reload(old, _config(new_text))
    # the default database lives in data_dir: it changes with it
    assert plan.restart_needed == ("engine.data_dir", "engine.database", "listener in")
    assert plan.config.engine == old.engine
    assert plan.config.listeners == old.listeners
    assert "kept until restart: engine.data_dir, engine.database, listener in" in plan.summary()


def test_identical_file_changes_nothing():
    plan = plan_reload(_config(BASE), _config(BASE))
    assert (plan.added, plan.changed, plan.removed, plan.restart_needed) == ((), (), (), ())


def test_audit_settings_wait_for_a_restart():
    old = _config(BASE)
    plan = plan_reload(old, _config(BASE + "audit:\n  retention: 1y\n"))
    assert plan.restart_needed == ("audit",)
    assert plan.config.audit == old.audit
