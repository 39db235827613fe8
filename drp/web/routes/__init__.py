"""One router per area: sign-in, alerts (the pages), reports, admin, the JSON API and single
sign-on. Each module imports drp.web.deps for what its routes need, never drp.web.app."""
