"""Tools that drive the runtime from outside, as a person or the scheduled flows would: `drp
demo` (the demo organisation and a handful of alerts) and `drp simulate` (a council's year).
They use only the runtime's public layers (the service layer, the timescale run, the
organisation loader); nothing in the runtime imports them."""
