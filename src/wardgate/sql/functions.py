"""What the analysis knows about functions beyond their names.

One authoritative list, `DANGEROUS`, names the builtins (and the contrib functions whose names
are as good as reserved) that the gateway cannot judge by their arguments: they run SQL given
as text, reach the server's files or programs, large objects, other servers, or act on the
server and other sessions. The policy refuses them to every role that is not an administrator
of the target (``policy.admin_roles``). `DANGEROUS_PREFIXES` extend it to families whose members
multiply between versions (``pg_ls_*``, ``lo_*``, ``dblink*``). Names are matched by their last
part, whatever the schema, so ``pg_catalog.pg_read_file`` and a look-alike in another schema
are both refused: erring towards refusal.

`OPAQUE` is what lineage cannot follow: builtins in pg_catalog that read data no argument
carries (every dangerous function, session settings, other sessions' statements). Functions
outside pg_catalog may run any query, so their result is unknown unless configured.
"""

from __future__ import annotations

_RUN_SQL_TEXT = (
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml",
    "table_to_xmlschema", "table_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
    "database_to_xmlschema", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
)  # fmt: skip
_FILES = (
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "pg_ls_logdir",
    "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir", "pg_ls_replslotdir", "pg_file_write", "pg_file_rename",
    "pg_file_unlink", "pg_file_sync", "pg_logdir_ls", "pg_current_logfile",
    "pg_import_system_collations",
)  # fmt: skip
_LARGE_OBJECTS = (
    "lo_import", "lo_export", "lo_from_bytea", "lo_get", "lo_put", "lo_unlink", "lo_create",
    "lo_creat", "lo_open", "lo_close", "lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64",
    "lo_truncate", "lo_truncate64", "loread", "lowrite",
)  # fmt: skip
_SERVER_EFFECTS = (
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_backup_start",
    "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_wal_replay_pause",
    "pg_wal_replay_resume", "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot", "pg_drop_replication_slot",
    "pg_replication_slot_advance", "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot", "pg_logical_slot_get_changes",
    "pg_logical_slot_peek_changes", "pg_logical_slot_get_binary_changes",
    "pg_logical_slot_peek_binary_changes", "pg_logical_emit_message",
    "pg_log_backend_memory_contexts", "pg_stat_reset", "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters",
    "pg_stat_reset_slru", "pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats",
)  # fmt: skip

# name -> why, as the refusal says it
DANGEROUS: dict[str, str] = {
    **{name: "runs SQL given as text, which the gateway cannot judge" for name in _RUN_SQL_TEXT},
    **{name: "reads or writes the server's files" for name in _FILES},
    **{name: "reaches large objects" for name in _LARGE_OBJECTS},
    **{name: "acts on the server or other sessions" for name in _SERVER_EFFECTS},
}
DANGEROUS_PREFIXES: dict[str, str] = {
    "dblink": "reaches another server",
    "pg_ls_": "reads the server's files",
    "pg_file_": "reads or writes the server's files",
    "pg_replication_origin_": "acts on the server's replication",
    "pg_stat_reset": "acts on the server's statistics",
    "lo_": "reaches large objects",
    "binary_upgrade_": "acts on the server's catalog",
}

OPAQUE = frozenset(
    {
        *DANGEROUS,
        # session state a previous statement may have filled
        "current_setting", "pg_cursor", "pg_prepared_statement", "pg_listening_channels",
        # the text the server runs, which is not the client's when the gateway decoded the
        # pseudonyms of a look-up (masking/lookups.py)
        "current_query",
        # other sessions' statements, replication and logs
        "pg_stat_get_activity", "pg_stat_get_backend_activity", "pg_mcv_list_items",
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


def danger(name: str) -> str | None:
    """Why calling the function ``name`` (its last name, as the parser folded it) is dangerous,
    or None. ``set_config`` is judged by its arguments instead (`sql/danger.py`)."""
    found = DANGEROUS.get(name)
    if found is not None:
        return found
    return next((why for p, why in DANGEROUS_PREFIXES.items() if name.startswith(p)), None)


def is_dangerous(name: str) -> bool:
    return danger(name) is not None


# Builtins that never fail, nor use time or memory that depend on the values, at the argument
# positions named (None: every argument; "values": json_build_object's values, not its keys,
# which must not be NULL): whether a statement fails is one bit about what it computed
# (``1/(ascii(ssn) - 49)`` fails iff the SSN starts with 1, ``(substr(ssn, 1, 1) || 'x')::int``
# iff ... ), so a value derived from a masked column may only go through these (the masking
# refuses the rest, ``masking/refusals.py``). What they return is masked whole. Integer and date
# arithmetic is not here: it overflows, at a bound a chosen constant puts anywhere.
TOTAL: dict[str, tuple[int, ...] | str | None] = {
    # text in, text out; a position, a length or a pattern argument may fail
    "upper": None, "lower": None, "initcap": None, "reverse": None, "concat": None,
    "concat_ws": None, "replace": None, "translate": None, "btrim": None, "ltrim": None,
    "rtrim": None, "substr": (0,), "substring": (0,), "left": (0,), "right": (0,),
    "split_part": (0, 1), "lpad": (0, 2), "rpad": (0, 2), "strpos": None, "position": None,
    "starts_with": None, "ascii": None, "md5": None, "quote_literal": None,
    "quote_ident": None, "quote_nullable": None, "regexp_replace": (0, 2),
    "regexp_match": (0,), "regexp_like": (0,), "to_hex": None, "encode": (0,),
    # dates: a field of a date, a date printed
    "extract": (1,), "date_part": (1,), "date_trunc": (1,), "to_char": (0,),
    # documents and arrays built from values
    "to_json": None, "to_jsonb": None, "row_to_json": None, "array_to_json": None,
    "json_build_array": None, "jsonb_build_array": None, "json_build_object": "values",
    "jsonb_build_object": "values", "array_to_string": None, "string_to_array": None,
    # aggregates that keep or collect values, counts and lengths
    "min": None, "max": None, "count": None, "array_agg": None, "string_agg": None,
    "json_agg": None, "jsonb_agg": None, "bool_and": None, "bool_or": None, "every": None,
    "length": (0,), "char_length": None, "character_length": None, "octet_length": None,
    "bit_length": None, "cardinality": None, "array_length": None, "num_nulls": None,
    "num_nonnulls": None,
    # set-returning: their row count is a comparison already (SET_RETURNING)
    "unnest": None,
}  # fmt: skip

# Types any value can be cast to without failing: its text (``ssn::text``, ``CAST(dob AS
# varchar(40))``). A cast to anything else parses the value and fails on what does not parse.
TOTAL_CASTS = frozenset({"text", "varchar", "bpchar", "name"})

# Binary operators that never fail on the operand sides named ("both", or "left": the right
# side is a pattern, a path or a key that fails when malformed).
TOTAL_OPERATORS: dict[str, str] = {
    **dict.fromkeys(("=", "<>", "!=", "<", ">", "<=", ">=", "||"), "both"),
    **dict.fromkeys(("~~", "~~*", "!~~", "!~~*", "~", "~*", "!~", "!~*"), "left"),
    **dict.fromkeys(("->", "->>", "#>", "#>>", "?", "?|", "?&", "@>", "<@"), "left"),
}


def total_at(name: str, position: int) -> bool:
    """Whether the builtin ``name`` never fails whatever value it is given at ``position``."""
    if name not in TOTAL:
        return False
    positions = TOTAL[name]
    if positions is None:
        return True
    if positions == "values":
        return position % 2 == 1
    return position in positions
