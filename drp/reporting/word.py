"""The dispute report as a Word document (python-docx): the same sections as the HTML, with
headings, the narrative, tables of names and numbers, and the charts as images, on A4, in
Word's built-in styles so it pastes into a council's annual report template and takes on its
look."""

from __future__ import annotations

import io
from typing import Any

from . import charts
from .sections import Table, layout, number, span


def _table(document: Any, table: Table) -> None:
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    document.add_paragraph(table.caption, style="Caption")
    rows = table.rows or [["None in the period", *([""] * (len(table.columns) - 1))]]
    grid = document.add_table(rows=1, cols=len(table.columns))
    grid.style = "Table Grid"
    grid.alignment = WD_TABLE_ALIGNMENT.LEFT
    for cell, text in zip(grid.rows[0].cells, table.columns, strict=True):
        cell.text = ""
        cell.paragraphs[0].add_run(text).bold = True
    for row in rows:
        cells = grid.add_row().cells
        for i, (cell, value) in enumerate(zip(cells, row, strict=True)):
            cell.text = number(value) if value != "" else ""
            if i:
                cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
    # Repeat the header row on each page a long table runs over.
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    header = grid.rows[0]._tr.get_or_add_trPr()
    repeat = OxmlElement("w:tblHeader")
    repeat.set(qn("w:val"), "true")
    header.append(repeat)


def to_docx(r: dict[str, Any], council: str) -> bytes:
    """The report as the bytes of a .docx file."""
    from docx import Document
    from docx.shared import Cm, Pt

    document = Document()
    page = document.sections[0]
    page.page_width, page.page_height = Cm(21.0), Cm(29.7)
    page.left_margin = page.right_margin = Cm(2.0)
    page.top_margin = page.bottom_margin = Cm(2.0)
    document.styles["Normal"].font.name = "Arial"
    document.styles["Normal"].font.size = Pt(10.5)
    props = document.core_properties
    props.title = f"Dispute resolution, {span(r['period'])}"
    props.author = council
    document.add_heading(f"Dispute resolution: {span(r['period'])}", level=0)
    document.add_paragraph(f"{council}. Protocol: {r['protocol']}. Themes: {r['taxonomy']}.")
    for section in layout(r):
        document.add_heading(section.title, level=1)
        for paragraph in section.text:
            document.add_paragraph(paragraph)
        for table in section.tables:
            _table(document, table)
        for title, image, alt in charts.png(r, section.charts):
            document.add_heading(title, level=2)
            document.add_picture(io.BytesIO(image), width=Cm(16.0))
            # The text alternative, for a reader who cannot see the chart.
            picture = document.inline_shapes[-1]._inline.docPr
            picture.set("descr", f"{title}: {alt}")
            document.add_paragraph(f"{title}: {alt}.", style="Caption")
    document.add_heading("Definitions", level=1)
    for key, text in r["definitions"].items():
        item = document.add_paragraph(style="List Bullet")
        item.add_run(f"{key}: ").bold = True
        item.add_run(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
