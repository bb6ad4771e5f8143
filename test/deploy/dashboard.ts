import { readFileSync } from "node:fs";

/** What Grafana puts in place of its variables before it sends a query; the test sends the same. */
const GRAFANA_VARIABLES: Readonly<Record<string, string>> = { $__rate_interval: "1m", $__interval: "15s", $__range: "1h" };

interface Panel {
  readonly type?: string;
  readonly targets?: readonly { readonly expr?: string }[];
  readonly panels?: readonly Panel[];
}

/** Every PromQL expression of a Grafana dashboard's panels (rows' panels too), Grafana's variables replaced. */
export function expressions(dashboardFile: string): string[] {
  const dashboard = JSON.parse(readFileSync(dashboardFile, "utf8")) as { panels: Panel[] };
  const all: string[] = [];
  const visit = (panels: readonly Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (!target.expr) throw new Error(`a target of panel "${JSON.stringify(panel).slice(0, 80)}" has no expr`);
        all.push(Object.entries(GRAFANA_VARIABLES).reduce((expr, [name, value]) => expr.split(name).join(value), target.expr));
      }
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  return all;
}

/** PromQL's functions, aggregations and keywords: the identifiers of an expression that are not metrics. */
const NOT_METRICS = new Set([
  ..."sum min max avg count stddev stdvar topk bottomk quantile count_values group".split(" "),
  ..."rate irate increase delta idelta deriv predict_linear histogram_quantile abs ceil floor round clamp clamp_min clamp_max".split(" "),
  ..."vector scalar time timestamp absent absent_over_time changes resets sort sort_desc label_replace label_join".split(" "),
  ..."avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time".split(" "),
  ..."by without on ignoring group_left group_right and or unless bool offset".split(" "),
]);

/**
 * The metric names an expression selects: its identifiers, less label matchers (`{…}`), label
 * lists (`by (…)`), range durations (`[…]`), strings, numbers and PromQL's own words.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "")
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const names = (bare.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? []).filter((word) => !NOT_METRICS.has(word));
  return [...new Set(names)];
}
