"""What the analysis knows about functions beyond their names.

Builtins (functions in pg_catalog) compute from their arguments, except the ones listed in
`OPAQUE`, which read data no argument carries: a query passed as text, a file, a session
setting, another backend's statement, the write-ahead log. Functions outside pg_catalog may run
any query, so their result is unknown unless configured.
"""

from __future__ import annotations

OPAQUE = frozenset(
    {
        # run a query given as text
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
        "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
        "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema",
        "database_to_xml_and_xmlschema", "ts_stat",
        # files, large objects, other servers
        "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "lo_get", "loread",
        "lo_export", "lo_import",
        # session state a previous statement may have filled
        "current_setting", "pg_cursor", "pg_prepared_statement", "pg_listening_channels",
        # other sessions' statements, replication and logs
        "pg_stat_get_activity", "pg_stat_get_backend_activity", "pg_current_logfile",
        "pg_logical_slot_get_changes", "pg_logical_slot_peek_changes",
        "pg_logical_slot_get_binary_changes", "pg_logical_slot_peek_binary_changes",
        "pg_logical_emit_message", "pg_mcv_list_items",
    }
)  # fmt: skip

# Builtins whose result tells how long or how many, never what: a result column made by them
# from PHI is not PHI (a hash is not here: an MD5 of an SSN is reversed in seconds).
CONTENT_FREE = frozenset(
    {"length", "char_length", "character_length", "octet_length", "bit_length", "count",
     "cardinality", "array_length", "json_array_length", "jsonb_array_length", "num_nulls",
     "num_nonnulls"}
)  # fmt: skip

# Builtin set-returning functions: how many rows they return depends on their arguments' values
# (``generate_series(1, ascii(ssn))``, ``regexp_matches(body, '123-45-6789', 'g')``), a
# count that no masking of the rows hides.
SET_RETURNING = frozenset(
    {"generate_series", "generate_subscripts", "unnest", "regexp_matches",
     "regexp_split_to_table", "string_to_table", "json_array_elements", "jsonb_array_elements",
     "json_array_elements_text", "jsonb_array_elements_text", "json_each", "jsonb_each",
     "json_each_text", "jsonb_each_text", "json_object_keys", "jsonb_object_keys",
     "jsonb_path_query", "json_populate_recordset", "jsonb_populate_recordset",
     "json_to_recordset", "jsonb_to_recordset", "ts_debug", "ts_parse", "ts_token_type",
     "xmltable"}
)  # fmt: skip

# Builtins that carry their arguments outside the result: to a ParameterStatus (a reported
# setting), another session's NotificationResponse, a sequence read back later, the lock table
# (``pg_locks.objid`` holds an advisory lock's key), or the time a statement takes.
SIDE_CHANNELS = frozenset(
    {"set_config", "pg_notify", "setval", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
     "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
     "pg_try_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
     "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock",
     "pg_advisory_unlock_shared"}
)  # fmt: skip

DANGEROUS_PREFIXES = ("dblink",)  # dblink, dblink_exec, dblink_fetch ...: another server

# Builtin set-returning functions that may appear in FROM and compute from their arguments,
# with the names of the columns they return (None: one column named after the alias or the
# function; "args": one column per argument, as unnest(a, b) does).
FROM_FUNCTIONS: dict[str, tuple[str, ...] | str | None] = {
    "unnest": "args",
    "generate_series": None,
    "generate_subscripts": None,
    "regexp_split_to_table": None,
    "string_to_table": None,
    "regexp_matches": None,
    "json_array_elements": ("value",),
    "jsonb_array_elements": ("value",),
    "json_array_elements_text": ("value",),
    "jsonb_array_elements_text": ("value",),
    "json_each": ("key", "value"),
    "jsonb_each": ("key", "value"),
    "json_each_text": ("key", "value"),
    "jsonb_each_text": ("key", "value"),
    "json_object_keys": None,
    "jsonb_object_keys": None,
    "jsonb_path_query": None,
    "json_to_record": (),  # () : the column definition list names the columns
    "jsonb_to_record": (),
    "json_to_recordset": (),
    "jsonb_to_recordset": (),
    "json_populate_record": (),
    "jsonb_populate_record": (),
    "json_populate_recordset": (),
    "jsonb_populate_recordset": (),
    "ts_debug": (),
    "xmltable": (),
}


def is_dangerous(name: str) -> bool:
    return name in OPAQUE or name.startswith(DANGEROUS_PREFIXES)
