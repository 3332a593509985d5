"""The Slack channel: the same pipeline, quotas, feedback and audit as the web, in Slack.

Layers: ``bolt.py`` (slack-bolt handlers: parse, ack, hand a job over), ``dispatch.py``
(run jobs in-process or as Celery tasks), ``service.py`` (one job: pipeline call and
Slack replies), ``identity.py`` and ``store.py`` (SQL), ``blocks.py`` (Block Kit text).
"""
