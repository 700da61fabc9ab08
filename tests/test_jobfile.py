"""The tests' job-file writer: what tomllib reads back is what was written."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from jobfile import JobFile, files_source, local_destination, toml

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
scalars = st.one_of(text, st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(text, inner, max_size=3)), max_leaves=12)
# Tables and lists of tables, nested, beside plain values: the shapes a job file has.
tables = st.recursive(st.dictionaries(text, values, max_size=4),
                      lambda inner: st.dictionaries(text, st.one_of(values, inner, st.lists(inner, min_size=1, max_size=3)),
                                                    max_size=4), max_leaves=8)


@given(tables)
def test_any_document_reads_back(doc: dict) -> None:
    assert tomllib.loads(toml(doc)) == doc


def test_a_job_reads_back_and_its_fragments_append(tmp_path: Path) -> None:
    awkward = tmp_path / 'it\'s "quoted" \\ back\tslashed ünïcode'
    job = JobFile(name="app", state_dir=tmp_path / "state", sources=[files_source(awkward, exclude=["*.log"])],
                  destinations=[local_destination(tmp_path / "b")], extra={"retention": {"keep_last": 2}})
    text = job.render() + "\n[[notify]]\ntype = \"command\"\nargv = [\"true\"]\n"
    data = tomllib.loads(text)
    assert data["source"] == [{"type": "files", "name": "app", "path": str(awkward), "exclude": ["*.log"]}]
    assert data["retention"] == {"keep_last": 2} and data["notify"][0]["argv"] == ["true"]
    assert data["state_dir"] == str(tmp_path / "state")
    # The last table of a fragment takes the keys appended to it.
    fragment = toml({"destination": [local_destination("/b")]}) + "encrypt = false\n"
    assert tomllib.loads(fragment)["destination"] == [{"type": "local", "path": "/b", "encrypt": False}]
