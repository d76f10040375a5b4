"""CLI commands of the mappings: ``eai convert FILE``, ``eai mapping test|list``.

Touches: files (reads the input file and the mapping files).

``convert`` prints ONLY the FHIR Bundle JSON on stdout, so that it can be
piped; every diagnostic goes to stderr. Input it cannot map is one line on
stderr naming the file, exit 1 (:class:`eai.errors.InputError`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from eai.errors import InputError, NotFound

__all__ = ["convert", "mapping"]

_XML_START = (b"<", b"\xef\xbb\xbf<")


def _content_type(payload: bytes) -> str:
    """``hl7v2`` for ``MSH...``, ``cda`` for XML (what the listeners would journal)."""
    head = payload.lstrip(b" \t\r\n")
    if head.startswith(_XML_START):
        return "cda"
    return "hl7v2"


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--mapping",
    "-m",
    "mapping_name",
    default=None,
    help="mapping to apply (default: the one whose default_for takes the message)",
)
@click.option(
    "--content-type",
    default=None,
    help="content type of FILE (default: cda for XML, else hl7v2)",
)
@click.option(
    "--validation",
    type=click.Choice(["full", "light"]),
    default="full",
    show_default=True,
    help="FHIR check of the output: fhir.resources models, or the lighter walk",
)
def convert(
    file: Path, mapping_name: str | None, content_type: str | None, validation: str
) -> None:
    """Print the FHIR Bundle a route with `map:` would deliver for FILE."""
    import mappings

    payload = file.read_bytes()
    kind = content_type or _content_type(payload)
    try:
        bundle = mappings.convert(
            payload, kind, mapping_name, validation="light" if validation == "light" else "full"
        )
    except InputError as exc:
        raise InputError(f"{file}: {exc.reason}", exc.hl7_code) from None
    except NotFound as exc:
        raise click.BadParameter(str(exc), param_hint="--mapping") from None
    click.echo(json.dumps(bundle, ensure_ascii=False, indent=2))


@click.group()
def mapping() -> None:
    """Mapping files (mappings/*.yaml): list them, run their tests."""


@mapping.command("test")
@click.argument("name", required=False)
def test_cmd(name: str | None) -> None:
    """Run the cases of mappings/NAME.tests.yaml (every mapping's when no NAME)."""
    import mappings

    try:
        results = mappings.run_mapping_tests(name)
    except NotFound as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    failed = [r for r in results if not r.passed]
    for result in results:
        click.echo(str(result))
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or not results:
        raise SystemExit(1)


@mapping.command("list")
def list_cmd() -> None:
    """The mappings shipped, their source and what `map: auto` gives them."""
    import mappings

    for name in mappings.available_mappings():
        compiled = mappings.load_mapping(name)
        takes = []
        if compiled.message_type_patterns:
            takes.append(",".join(compiled.message_type_patterns))
        if compiled.document_codes:
            takes.append("document codes " + ",".join(sorted(compiled.document_codes)))
        if compiled.content_template_ids:
            takes.append("templates anywhere " + ",".join(compiled.content_template_ids))
        if compiled.template_ids:
            takes.append("document templates " + ",".join(compiled.template_ids))
        default = f" (map: auto: {'; '.join(takes)})" if takes else ""
        click.echo(f"{name}\t{compiled.source.name}\t{compiled.description}{default}")
