"""A page per child, search by child reference or alert number, and the print view of an
alert for the child's file. What a person sees is the access policy's (drp/ladder/access.py),
asked through the service layer's queries; every page is audited like other views."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
