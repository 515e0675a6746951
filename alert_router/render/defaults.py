# ruff: noqa: E501 - template lines are message lines; wrapping them would change the output
"""The built-in templates of every channel (Jinja2 source; the context is documented in ``docs/channels.md``).

Each is rendered in the sandbox of its dialect (see :mod:`alert_router.render.templates`), so values
are escaped automatically; filters (``code``, ``codeblock``, ``link``, ``bold``, ``labels``, ``clip``,
``oneline``, ``duration``) produce markup that is already safe. A receiver's ``template:`` replaces
these; copying one of them is a good start.
"""

from __future__ import annotations

SLACK_BODY = """\
{% if digest %}
{% for a in alerts %}
{{ a.marker }} {{ a.short_id|code }} {{ a.name|clip(60)|bold }}{% for kv in a.key_labels[:3] %} {{ kv[1]|code(30) }}{% endfor %}{% if a.summary %} — {{ a.summary|oneline|clip(80) }}{% endif %}

{% endfor %}
{% if more %}
…and {{ more }} more alert{{ "s" if more != 1 else "" }} that did not fit.
{% endif %}
{% else %}
{% if fallback_from %}
_Delivered here because {{ fallback_from }} failed: {{ fallback_reason|clip(200) }}_

{% endif %}
{% if escalation %}
⏫ *Escalation {{ escalation.step }} of {{ escalation.repeat }}*: not acknowledged for {{ escalation.unacked_for|bold }}{% if escalation.rule %} (rule {{ escalation.rule|code(80) }} escalates after {{ escalation.after }}){% endif %}

{% endif %}
{% for a in alerts %}
{% if count <= 10 %}
{{ a.marker }} {{ a.name|clip(120)|bold }}{% if a.summary %} — {{ a.summary|oneline|clip(300) }}{% endif %}

{{ a.key_labels|labels }}
{% if a.description %}
{{ a.description|clip(600) }}
{% endif %}
{% if a.firing %}Firing for {{ a.duration }} (since {{ a.since }}){% else %}Resolved, fired for {{ a.duration }}{% endif %}{% if a.acked_by %} · acked by {{ a.acked_by|clip(80) }}{% endif %} · {{ a.short_id|code }}

{% else %}
{{ a.marker }} {{ a.short_id|code }} {{ a.name|clip(60)|bold }}{% for kv in a.key_labels[:3] %} {{ kv[1]|code(30) }}{% endfor %}{% if a.summary %} — {{ a.summary|oneline|clip(100) }}{% endif %}{% if a.acked_by %} · acked{% endif %}

{% endif %}
{% endfor %}
{% if more %}
…and {{ more }} more alert{{ "s" if more != 1 else "" }} in this group.
{% endif %}
{% if truncated_alerts %}
Alertmanager left out {{ truncated_alerts }} more (max_alerts).
{% endif %}
{% for entry in logs %}
{% if entry.status == "ok" and entry.text %}
*Logs* {{ entry.query|code(200) }}
{{ entry.text|codeblock(1500) }}
{% elif entry.status == "empty" %}
_No log lines for_ {{ entry.query|code(200) }}
{% else %}
_Logs unavailable{% if entry.reason %}: {{ entry.reason|oneline|clip(200) }}{% endif %}_
{% endif %}
{% endfor %}
{% for k in kubernetes %}
🔎 {{ k.target|code(120) }}: {{ k.summary|oneline|clip(300) }}

{% endfor %}
{% for g in graphs if g.status != "ok" %}
_Graph unavailable: {{ g.reason|oneline|clip(200) }}_
{% endfor %}
{% for r in runbook_runs %}
⚙️ Runbook {{ r.runbook|code(80) }}{% if r.dry_run %} (dry run){% endif %}: {{ r.status|bold }}{% if r.summary and not r.failure %} — {{ r.summary|oneline|clip(300) }}{% endif %}
{% if r.failure %}

❌ *Failed step* {{ r.failure.step|code(120) }}: {{ r.failure.error|oneline|clip(600) }}
*Outcome:* {{ r.failure.outcome|oneline|clip(300) }}
*Next:* {{ r.failure.next|oneline|clip(300) }}
{% endif %}
{% if r.evidence %}
🔎 Before: {{ r.evidence|oneline|clip(300) }}
{% endif %}

{% endfor %}
{% if runbook_message %}
💬 {{ runbook_message|clip(1500) }}
{% endif %}
{% endif %}
"""
"""Slack: the message body in mrkdwn; the channel adds the header, links and buttons around it."""

TELEGRAM = """\
{{ marker }} <b>{{ title|clip(200) }}</b>{% if resolved and fired_for %} · fired for {{ fired_for }}{% endif %}

{% if fallback_from %}
<i>Delivered here because {{ fallback_from }} failed: {{ fallback_reason|clip(200) }}</i>
{% endif %}
{% if escalation %}
⏫ <b>Escalation {{ escalation.step }} of {{ escalation.repeat }}</b>: not acknowledged for <b>{{ escalation.unacked_for }}</b>{% if escalation.rule %} (rule <code>{{ escalation.rule|clip(80) }}</code> escalates after {{ escalation.after }}){% endif %}

{% endif %}
{% if digest %}
{% for a in alerts %}
{{ a.marker }} <code>{{ a.short_id }}</code> <b>{{ a.name|clip(50) }}</b>{% for kv in a.key_labels[:2] %} {{ kv[1]|clip(25) }}{% endfor %}{% if a.summary %} — {{ a.summary|oneline|clip(60) }}{% endif %}

{% endfor %}
{% if more %}
…and {{ more }} more alert{{ "s" if more != 1 else "" }} that did not fit.
{% endif %}
{% else %}
{% for a in alerts %}

{% if count <= 5 %}
{{ a.marker }} <b>{{ a.name|clip(120) }}</b>{% if a.summary %} — {{ a.summary|oneline|clip(300) }}{% endif %}

{{ a.key_labels|labels }}
{% if a.description %}
<i>{{ a.description|clip(500) }}</i>
{% endif %}
{% if a.firing %}Firing for {{ a.duration }}{% else %}Resolved, fired for {{ a.duration }}{% endif %}{% if a.acked_by %} · acked by {{ a.acked_by|clip(80) }}{% endif %} · <code>{{ a.short_id }}</code>
{% if a.links.generator or a.links.grafana or a.links.alertmanager or a.links.silence %}
{% if a.links.generator %}{{ a.links.generator|link("Source") }} {% endif %}{% if a.links.grafana %}{{ a.links.grafana|link("Grafana") }} {% endif %}{% if a.links.alertmanager %}{{ a.links.alertmanager|link("Alertmanager") }} {% endif %}{% if a.links.silence %}{{ a.links.silence|link("Silence") }}{% endif %}

{% endif %}
{% else %}
{{ a.marker }} <code>{{ a.short_id }}</code> <b>{{ a.name|clip(60) }}</b>{% for kv in a.key_labels[:2] %} {{ kv[1]|clip(30) }}{% endfor %}{% if a.summary %} — {{ a.summary|oneline|clip(80) }}{% endif %}{% if a.acked_by %} · acked{% endif %}

{% endif %}
{% endfor %}
{% if more %}

…and {{ more }} more alert{{ "s" if more != 1 else "" }} in this group.
{% endif %}
{% if truncated_alerts %}
Alertmanager left out {{ truncated_alerts }} more (max_alerts).
{% endif %}
{% for entry in logs %}

{% if entry.status == "ok" and entry.text %}
<b>Logs</b> <code>{{ entry.query|clip(200) }}</code>
{{ entry.text|codeblock(1200) }}
{% elif entry.status == "empty" %}
<i>No log lines for</i> <code>{{ entry.query|clip(200) }}</code>
{% else %}
<i>Logs unavailable{% if entry.reason %}: {{ entry.reason|oneline|clip(200) }}{% endif %}</i>
{% endif %}
{% endfor %}
{% for k in kubernetes %}

🔎 <code>{{ k.target|clip(120) }}</code>: {{ k.summary|oneline|clip(300) }}
{% endfor %}
{% for g in graphs if g.status != "ok" %}

<i>Graph unavailable: {{ g.reason|oneline|clip(200) }}</i>
{% endfor %}
{% for r in runbook_runs %}

⚙️ Runbook <code>{{ r.runbook|clip(80) }}</code>{% if r.dry_run %} (dry run){% endif %}: <b>{{ r.status }}</b>{% if r.summary and not r.failure %} — {{ r.summary|oneline|clip(300) }}{% endif %}
{% if r.failure %}

❌ <b>Failed step</b> <code>{{ r.failure.step|clip(120) }}</code>: {{ r.failure.error|oneline|clip(600) }}
<b>Outcome:</b> {{ r.failure.outcome|oneline|clip(300) }}
<b>Next:</b> {{ r.failure.next|oneline|clip(300) }}
{% endif %}
{% if r.evidence %}
🔎 Before: {{ r.evidence|oneline|clip(300) }}
{% endif %}
{% endfor %}
{% if runbook_message %}

💬 {{ runbook_message|clip(1500) }}
{% endif %}
{% endif %}
"""
"""Telegram: the whole message in Telegram's HTML subset; the channel adds the buttons."""

EMAIL_SUBJECT = """\
{{ title }}{% if resolved and fired_for %} (fired for {{ fired_for }}){% endif %}"""
"""Email subject (plain text; the channel folds it to one line and clips it)."""

EMAIL_TEXT = """\
{{ title }}{% if resolved and fired_for %} (fired for {{ fired_for }}){% endif %}

{% if fallback_from %}
Delivered here because {{ fallback_from }} failed: {{ fallback_reason }}

{% endif %}
{% if escalation %}
ESCALATION: {{ escalation.text }}

{% endif %}
{% for a in alerts %}
{{ "FIRING" if a.firing else "RESOLVED" }} {{ a.name }} [{{ a.severity }}] ({{ a.short_id }}){% if a.acked_by %} acked by {{ a.acked_by }}{% endif %}

{% if a.summary %}
  Summary:     {{ a.summary|oneline }}
{% endif %}
{% if a.description %}
  Description: {{ a.description|oneline|clip(2000) }}
{% endif %}
  Labels:      {{ a.key_labels|labels }}
  {{ "Firing for:  " if a.firing else "Fired for:   " }}{{ a.duration }} (since {{ a.starts_at }}{{ (", until " ~ a.ends_at) if a.ends_at else "" }})

{% for name, url in a.links.items() %}
  {{ name|capitalize }}: {{ url }}
{% endfor %}

{% endfor %}
{% if more %}
...and {{ more }} more alert{{ "s" if more != 1 else "" }}.
{% endif %}
{% if truncated_alerts %}
Alertmanager left out {{ truncated_alerts }} more (max_alerts).
{% endif %}
{% for entry in logs %}
{% if entry.status == "ok" and entry.text %}
Logs ({{ entry.query }}):
{{ entry.text|codeblock(5000) }}

{% elif entry.status == "empty" %}
No log lines for {{ entry.query }}

{% else %}
Logs unavailable{% if entry.reason %}: {{ entry.reason }}{% endif %}


{% endif %}
{% endfor %}
{% for k in kubernetes %}
Kubernetes {{ k.target }}: {{ k.summary }}

{% endfor %}
{% for g in graphs %}
{% if g.status == "ok" %}
Graph: {{ g.title }}{% if g.describe %} (fires {{ g.describe }}){% endif %}, in the HTML part{% if g.url %} and at {{ g.url }}{% endif %}

{% else %}
Graph unavailable: {{ g.reason }}

{% endif %}
{% endfor %}
{% for r in runbook_runs %}
Runbook {{ r.runbook }}{% if r.dry_run %} (dry run){% endif %}: {{ r.status }}{% if r.summary and not r.failure %} - {{ r.summary }}{% endif %}

{% if r.failure %}
  Failed step: {{ r.failure.step }}
  Error:       {{ r.failure.error }}
  Outcome:     {{ r.failure.outcome }}
  Next:        {{ r.failure.next }}

{% endif %}
{% if r.evidence %}
  Before the run: {{ r.evidence }}

{% endif %}
{% endfor %}
{% if runbook_message %}
{{ runbook_message }}

{% endif %}
--
alert-router · receiver {{ receiver }} · group {{ group_id }}
"""
"""Email text part (plain text)."""

EMAIL_HTML = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif; font-size: 14px;">
<h2 style="margin: 0 0 8px 0;">{{ marker }} {{ title }}{% if resolved and fired_for %} <small>(fired for {{ fired_for }})</small>{% endif %}</h2>
{% if fallback_from %}
<p><i>Delivered here because {{ fallback_from }} failed: {{ fallback_reason }}</i></p>
{% endif %}
{% if escalation %}
<p style="background: #fff3cd; padding: 6px;">⏫ <b>Escalation {{ escalation.step }} of {{ escalation.repeat }}</b>: not acknowledged for <b>{{ escalation.unacked_for }}</b>{% if escalation.rule %} (rule <code>{{ escalation.rule }}</code> escalates after {{ escalation.after }}){% endif %}</p>
{% endif %}
{% for a in alerts %}
<table style="border-collapse: collapse; margin: 12px 0; width: 100%;">
<tr><td colspan="2" style="padding: 4px 0;">{{ a.marker }} <b>{{ a.name }}</b> <code>{{ a.short_id }}</code>{% if a.acked_by %} · acked by {{ a.acked_by }}{% endif %}</td></tr>
{% if a.summary %}<tr><td style="padding: 2px 8px 2px 0; color: #555;">Summary</td><td>{{ a.summary }}</td></tr>{% endif %}

{% if a.description %}<tr><td style="padding: 2px 8px 2px 0; color: #555;">Description</td><td>{{ a.description|clip(2000) }}</td></tr>{% endif %}

<tr><td style="padding: 2px 8px 2px 0; color: #555;">Labels</td><td>{{ a.key_labels|labels }}</td></tr>
<tr><td style="padding: 2px 8px 2px 0; color: #555;">{{ "Firing for" if a.firing else "Fired for" }}</td><td>{{ a.duration }} (since {{ a.starts_at }}{% if a.ends_at %}, until {{ a.ends_at }}{% endif %})</td></tr>
{% if a.links %}<tr><td style="padding: 2px 8px 2px 0; color: #555;">Links</td><td>{% for name, url in a.links.items() %}{{ url|link(name|capitalize) }} {% endfor %}</td></tr>{% endif %}

</table>
{% endfor %}
{% if more %}<p>…and {{ more }} more alert{{ "s" if more != 1 else "" }}.</p>{% endif %}

{% if truncated_alerts %}<p>Alertmanager left out {{ truncated_alerts }} more (max_alerts).</p>{% endif %}

{% for entry in logs %}
{% if entry.status == "ok" and entry.text %}
<p><b>Logs</b> <code>{{ entry.query }}</code></p>
{{ entry.text|codeblock(5000) }}
{% elif entry.status == "empty" %}
<p><i>No log lines for</i> <code>{{ entry.query }}</code></p>
{% else %}
<p><i>Logs unavailable{% if entry.reason %}: {{ entry.reason }}{% endif %}</i></p>
{% endif %}
{% endfor %}
{% for k in kubernetes %}
<p>🔎 <code>{{ k.target }}</code>: {{ k.summary }}</p>
{% endfor %}
{% for g in graphs %}
{% if g.status == "ok" %}
<p><img src="cid:{{ g.cid }}" alt="{{ g.alt }}" width="{{ g.width }}" height="{{ g.height }}" style="max-width: 100%; height: auto;"></p>
{% else %}
<p><i>Graph unavailable: {{ g.reason }}</i></p>
{% endif %}
{% endfor %}
{% for r in runbook_runs %}
<p>⚙️ Runbook <code>{{ r.runbook }}</code>{% if r.dry_run %} (dry run){% endif %}: <b>{{ r.status }}</b>{% if r.summary and not r.failure %} — {{ r.summary }}{% endif %}{% if r.evidence %}<br>🔎 Before the run: {{ r.evidence }}{% endif %}</p>
{% if r.failure %}
<table style="border-collapse: collapse; margin: 4px 0 12px 0;">
<tr><td style="padding: 2px 8px 2px 0; color: #555;">Failed step</td><td><code>{{ r.failure.step }}</code></td></tr>
<tr><td style="padding: 2px 8px 2px 0; color: #555;">Error</td><td>{{ r.failure.error }}</td></tr>
<tr><td style="padding: 2px 8px 2px 0; color: #555;">Outcome</td><td>{{ r.failure.outcome }}</td></tr>
<tr><td style="padding: 2px 8px 2px 0; color: #555;">Next</td><td><b>{{ r.failure.next }}</b></td></tr>
</table>
{% endif %}
{% endfor %}
{% if runbook_message %}<p>💬 {{ runbook_message }}</p>{% endif %}

<p style="color: #888; font-size: 12px;">alert-router · receiver {{ receiver }} · group {{ group_id }}</p>
</body></html>
"""
"""Email HTML part."""

WEBHOOK = """\
{"receiver": {{ receiver }}, "status": {{ status }}, "title": {{ title }}, "group_key": {{ group_key }},
 "alerts": {{ all_alerts }}, "logs": {{ logs }}, "kubernetes": {{ kubernetes }}, "runbook_runs": {{ runbook_runs }},
 "digest": {{ digest }}, "escalation": {{ escalation }}}
"""
"""Webhook: only used as the fallback when a receiver's own JSON template fails (the default body is built in
Python, see :func:`alert_router.channels.webhook.default_body`)."""
