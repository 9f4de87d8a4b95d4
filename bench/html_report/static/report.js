// fitbench report: sortable tables and the side-by-side image comparison. No library, no network.
"use strict";

// --- Sortable tables: a click (or Enter) on a header sorts by that column; again, the other way. ---
// Cells carry their value in data-sort (numbers as numbers); an empty value sorts last either way.

function sortKey(cell) {
  if (!cell) return null;
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  if (raw === "") return null;
  const value = Number(raw);
  return Number.isFinite(value) ? value : raw;
}

function sortTable(table, header, column) {
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("thead th").forEach((th) => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).map((row) => ({ row, key: sortKey(row.cells[column]) }));
  const numeric = rows.every(({ key }) => key === null || typeof key === "number");
  rows.sort((a, b) => {
    if (a.key === null || b.key === null) return (a.key === null) - (b.key === null);
    const order = numeric ? a.key - b.key : String(a.key).localeCompare(String(b.key), undefined, { numeric: true });
    return ascending ? order : -order;
  });
  rows.forEach(({ row }) => body.appendChild(row));
}

document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th").forEach((header, column) => {
    header.tabIndex = 0;
    header.title = "sort by this column";
    header.addEventListener("click", () => sortTable(table, header, column));
    header.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortTable(table, header, column);
      }
    });
  });
});

// --- Image comparison: two pictures on top of each other at full resolution (times the zoom), the slider
// wiping between them. Clicking a picture of the same image puts it on the right. ---

const FIT_WIDTH = 512; // the first zoom makes small images about this wide

function setUpComparison(box) {
  const left = box.querySelector(".compare-left");
  const right = box.querySelector(".compare-right");
  const zoom = box.querySelector(".compare-zoom");
  const split = box.querySelector(".compare-split");
  const over = box.querySelector(".compare-over");
  const under = box.querySelector(".compare-under");
  let zoomChosen = false;
  right.selectedIndex = Number(box.dataset.right || 1);

  function draw() {
    if (over.getAttribute("src") !== left.value) over.src = left.value;
    if (under.getAttribute("src") !== right.value) under.src = right.value;
    const width = under.naturalWidth || over.naturalWidth;
    if (!width) return; // drawn again once loaded
    if (!zoomChosen) {
      const fitting = Array.from(zoom.options).filter((o) => width * Number(o.value) <= FIT_WIDTH);
      zoom.value = fitting.length ? fitting[fitting.length - 1].value : zoom.options[0].value;
    }
    const shown = width * Number(zoom.value);
    [over, under].forEach((img) => { img.style.width = shown + "px"; });
    over.style.clipPath = `inset(0 ${100 - Number(split.value)}% 0 0)`;
  }

  [left, right, split].forEach((control) => control.addEventListener("input", draw));
  zoom.addEventListener("input", () => { zoomChosen = true; draw(); });
  [over, under].forEach((img) => img.addEventListener("load", draw));
  box.closest(".image-block").querySelectorAll("[data-choice]").forEach((tile) => {
    tile.addEventListener("click", () => {
      right.selectedIndex = Number(tile.dataset.choice);
      draw();
      box.scrollIntoView({ block: "nearest" });
    });
  });
  draw();
}

document.querySelectorAll(".compare").forEach(setUpComparison);
