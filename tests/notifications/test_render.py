"""Email templates: HTML autoescaped, plain text and subject left as written."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from notifications.render import make_environment, merge_email, render_email

TEMPLATES = Path(__file__).parent / "templates"
CONTEXT = {
    "contact": {"name": "Ana & Bo"},
    "job": {"title": "Your Renault Clio", "stage": "Paint <2nd coat>"},
    "note": "<script>alert('x')</script>",
    "status_url": "https://tracker.example/s/tok?a=1&b=2",
}


def test_the_html_part_is_escaped_and_the_text_part_is_not():
    rendered = render_email(make_environment(TEMPLATES), "stage_changed", CONTEXT)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in rendered.html
    assert "<script>" not in rendered.html
    assert "Ana &amp; Bo" in rendered.html
    assert 'href="https://tracker.example/s/tok?a=1&amp;b=2"' in rendered.html
    assert "Note from the workshop: <script>alert('x')</script>" in rendered.text
    assert "Hello Ana & Bo," in rendered.text
    assert rendered.subject == "Your Renault Clio: Paint <2nd coat>"


def test_a_subject_always_renders_on_one_line():
    context = {**CONTEXT, "job": {"title": "Clio\r\nBcc: someone@example.com", "stage": "Paint"}}
    rendered = render_email(make_environment(TEMPLATES), "stage_changed", context)
    assert rendered.subject == "Clio Bcc: someone@example.com: Paint"


def test_a_missing_value_fails_loudly_instead_of_rendering_blank():
    with pytest.raises(jinja2.UndefinedError):
        render_email(make_environment(TEMPLATES), "stage_changed", {**CONTEXT, "job": {"title": "Clio"}})


def test_autoescaping_follows_the_template_name(tmp_path):
    for name in ("a.html", "a.xml", "a.txt"):
        (tmp_path / name).write_text("{{ value }}")
    environment = make_environment(tmp_path)
    rendered = {
        name: environment.get_template(name).render(value="<&>") for name in ("a.html", "a.xml", "a.txt")
    }
    assert rendered == {"a.html": "&lt;&amp;&gt;", "a.xml": "&lt;&amp;&gt;", "a.txt": "<&>"}


@pytest.mark.parametrize(
    "note",
    [
        "<script>alert('x')</script> & \"quoted\"",
        "{{ status_url }} %(note)s {% raw %}",
        "Zoë\r\nBcc: someone@example.com",
    ],
)
def test_a_merged_email_reads_as_if_rendered_for_its_recipient(note):
    environment = make_environment(TEMPLATES)
    personal = {"note": note, "status_url": "https://tracker.example/s/tok?a=1&b=2"}
    merge = merge_email(environment, "stage_changed", CONTEXT, personal)
    assert merge.fill(personal) == render_email(environment, "stage_changed", {**CONTEXT, **personal})


def test_a_value_that_looks_like_a_hole_stays_as_it_is():
    environment = make_environment(TEMPLATES)
    lookalike = "\ue000" + "0" * 16 + ":note\ue001"
    context = {**CONTEXT, "job": {"title": lookalike, "stage": "Paint"}}
    merge = merge_email(environment, "stage_changed", context, ["note"])
    alone = render_email(environment, "stage_changed", {**context, "note": "mine"})
    assert merge.fill({"note": "mine"}) == alone
