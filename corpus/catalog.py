"""corpus.duckdb: views over the run's Parquet files, and read-only queries against it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from corpus.run_folder import PERSONAS, REJECTS, RunFolder, sql_string
from schemas.errors import UserInputError
from schemas.tables import PERSONAS_AS_MAP

# The views name the run folder's files by absolute path, so any DuckDB client opens corpus.duckdb
# from any working directory. The folder they point at is recorded beside them; when the run folder
# has moved (or been copied), populace rewrites the views for where it is now (`catalog_for`).
ROOT_TABLE = "populace_catalog"


def views(run: RunFolder) -> dict[str, str]:
    return {
        "personas": PERSONAS_AS_MAP.format(files=run.glob_sql(PERSONAS)),
        "rejects": f"SELECT * FROM read_parquet({run.glob_sql(REJECTS)})",
        "attributes": (
            "SELECT persona_id, e.key AS attribute, e.value AS value "
            "FROM (SELECT persona_id, unnest(map_entries(attributes)) AS e FROM personas)"
        ),
    }


def create_views(con: duckdb.DuckDBPyConnection, run: RunFolder) -> None:
    for name, sql in views(run).items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    con.execute(f"CREATE OR REPLACE TABLE {ROOT_TABLE} AS SELECT ? AS root", [str(run.root.resolve())])


def build_catalog(run: RunFolder) -> Path:
    """Recreate corpus.duckdb from scratch (it only holds views, so this is cheap)."""
    tmp = run.catalog.with_name(".corpus.duckdb.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        create_views(con, run)
    finally:
        con.close()
    tmp.replace(run.catalog)
    return run.catalog


def catalog_root(catalog: Path) -> str | None:
    """The run folder the catalog's views point at (None for a catalog written before they were absolute)."""
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [ROOT_TABLE]).fetchone()
        if not (found and found[0]):
            return None
        row = con.execute(f"SELECT root FROM {ROOT_TABLE}").fetchone()
        root: str | None = row[0] if row else None
        return root
    finally:
        con.close()


def catalog_for(run: RunFolder) -> Path | None:
    """The run's catalog, rewritten first if the folder moved; None if it moved and cannot be rewritten
    (a read-only copy), in which case queries build the views in memory."""
    if catalog_root(run.catalog) == str(run.root.resolve()):
        return run.catalog
    try:
        return build_catalog(run)
    except OSError:
        return None


def query_run(run_dir: Path, sql: str) -> pa.Table:
    """Answer one SELECT from the run's catalog: read-only, no file access outside the run folder,
    no ATTACH, no extension installs, and settings locked so the query cannot lift any of it."""
    run = RunFolder(Path(run_dir))
    if not run.catalog.is_file():
        raise UserInputError(
            str(run_dir),
            "corpus.duckdb",
            "no catalog in this folder",
            "pass a finished run folder (populace build writes corpus.duckdb)",
        )
    catalog = catalog_for(run)
    con = duckdb.connect(str(catalog), read_only=True) if catalog else duckdb.connect()
    try:
        if catalog is None:
            create_views(con, run)
        con.execute(f"SET file_search_path = {sql_string(run.root.resolve())}")
        # Views read absolute paths; a query may name the run's files relative to its folder
        # (file_search_path), so its stage folders are allowed by their relative names too.
        stages = sorted(p.name for p in run.root.iterdir() if p.is_dir() and "'" not in p.name)
        folders = ", ".join(sql_string(folder) for folder in [f"{run.root.resolve()}/", *(f"{s}/" for s in stages)])
        con.execute(f"SET allowed_directories = [{folders}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET lock_configuration = true")
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise UserInputError(str(run_dir), "sql", str(exc).splitlines()[0], "write one SELECT query") from exc
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            kinds = ", ".join(s.type.name for s in statements) or "nothing"
            raise UserInputError(
                str(run_dir),
                "sql",
                f"only one SELECT is allowed, got {kinds}",
                "query the views personas, rejects and attributes with one SELECT",
            )
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise UserInputError(
                str(run_dir), "sql", str(exc).splitlines()[0], "query the views personas, rejects and attributes"
            ) from exc
    finally:
        con.close()
