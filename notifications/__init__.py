"""Notifications: Jinja2 e-mails, a transactional outbox and two transports (files, SMTP).

This package knows nothing of alerts beyond the context it is given: the service layer decides
who is told what, and hands over a message name, a recipient and a context."""
