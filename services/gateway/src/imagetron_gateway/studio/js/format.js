// Words and numbers as people read them.

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const steps = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"]];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return relative.format(Math.round(value), "year");
}

export function bytes(count) {
  if (count === null || count === undefined) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

export const STATUS_LABELS = {
  pending: "Queued",
  submitted: "Sent",
  processing: "Rendering",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** "Imagine", "Upscale 2", "Variation 3 · subtle", "Reroll". */
export function commandLabel(task) {
  switch (task.command) {
    case "upscale":
      return `Upscale ${task.origin_index}`;
    case "variation":
      return `Variation ${task.origin_index} · ${task.variation_strength || "strong"}`;
    case "reroll":
      return "Reroll";
    default:
      return "Imagine";
  }
}

/** Python string offsets count code points; JavaScript's count UTF-16 units. */
export function sliceCodePoints(text, start, end) {
  return Array.from(text).slice(start, end).join("");
}

export function codePointLength(text) {
  return Array.from(text).length;
}

export const ASPECT_RATIOS = ["1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16"];

export function ratioValue(aspect) {
  const [w, h] = (aspect || "1:1").split(":").map(Number);
  return w > 0 && h > 0 ? `${w} / ${h}` : "1 / 1";
}
