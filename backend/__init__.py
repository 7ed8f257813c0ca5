"""fieldsync hub: the Flask application factory.

``create_app(test_config=None)``: defaults from backend.settings, then the
instance folder's ``config.py``, then ``FIELDSYNC_*`` environment variables,
or the given test config. Production: ``gunicorn "backend:create_app()"``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import text

from . import db as database
from . import errors, jobs, schema
from .compression import Gzip
from .settings import DEFAULTS


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    instance = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("FIELDSYNC_INSTANCE") or None
    app = Flask(__name__, instance_path=instance, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("FIELDSYNC")
    else:
        app.config["SCHEDULER"] = False  # tests run scheduled jobs by hand unless they ask for the scheduler
        app.config.from_mapping(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "fieldsync.db")
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    app.json.sort_keys = False  # type: ignore[attr-defined]

    database.init_app(app)
    errors.init_app(app)
    schema.init_app(app)
    jobs.init_app(app)

    from . import auth, web
    from .admin import bp as admin_bp
    from .api import bp as api_bp

    app.register_blueprint(api_bp)
    auth.init_app(app)  # sessions, login, CSRF (the API is exempt), security headers
    web.init_app(app)  # command staff's pages and the HTML error pages
    app.register_blueprint(admin_bp)  # hub administrators' pages, /admin
    from .api.auth import refuse_unread_body

    def on_refused(environ: dict[str, Any], message: str) -> None:
        with app.app_context():
            refuse_unread_body(environ, message)

    app.wsgi_app = Gzip(app.wsgi_app, int(app.config["MAX_CONTENT_LENGTH"]), on_refused)  # type: ignore[method-assign]

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            database.db.session.execute(text("SELECT 1"))
            return jsonify({"status": "ok", "database": "ok"})
        except Exception:
            database.db.session.rollback()
            return jsonify({"status": "unavailable", "database": "unreachable"}), 503

    return app
