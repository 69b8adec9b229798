"""The PostgreSQL statement that writes a lone effect record with its audit records
(``record_effect_audited``) holds ``record_effect`` verbatim, so the two never drift apart;
and the audit log's ``_many`` form takes ``audit_append``'s rows as JSON, in order."""

from __future__ import annotations

import json
import re

from aiosys.store import _sql
from aiosys.store._pgbatch import many_params


def test_the_audited_record_statement_holds_record_effect_verbatim():
    q = _sql.load_queries("postgres")
    assert q["record_effect"] in q["record_effect_audited"]
    assert q["record_effect"] in q["record_effect_audited_many"]


def test_audit_append_many_takes_the_rows_of_audit_append_as_json_objects_in_order():
    q = _sql.load_queries("postgres")
    assert set(re.findall(r"(?<![:\w]):(\w+)", q["audit_append"])) == {
        "digest",
        "tenant",
        "at",
        "body",
    }
    rows = [
        {"digest": "d1", "tenant": "t", "at": 1, "body": '{"a":"\\u0000 é"}'},
        {"digest": "d2", "tenant": "t\x00", "at": 2, "body": "{}"},
    ]
    encoded = json.loads(many_params(rows)["rows"])
    assert [r["digest"] for r in encoded] == ["d1", "d2"]
    assert encoded[0] == rows[0]
    assert encoded[1]["tenant"] == "t\\u0000"  # storable, as a lone statement binds it
