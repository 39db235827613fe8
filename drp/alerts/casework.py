"""Casework beside the ladder: good-practice records, moving a misfiled alert to the right
child, linking related alerts. (Acknowledgement and the Cafcass referral are in commands.py.)"""

from __future__ import annotations

from .unit import UnitOfWork


class Casework(UnitOfWork):
    pass
