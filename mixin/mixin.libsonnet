// The captaindata-exporter monitoring mixin: its alerts, recording rules and Grafana dashboards, bent by
// `_config` as kubernetes-mixin and node-mixin are:
//
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="captaindata"', runningTooLong: '2h' } }
//
// config.libsonnet holds the `_config` defaults (mixin/README.md lists the keys). The data beside this file
// is generated, never edited: config.libsonnet and rules.libsonnet by deploy/generate.py (with the defaults,
// the same groups as deploy/prometheus/captaindata-alerts.rules.yml), dashboards/*.json and
// dashboard_thresholds.json by grafana/generate.py (the same as grafana/dashboards/). They live inside
// mixin/ so that jsonnet-bundler can vendor this directory alone.
local seconds = (import 'durations.libsonnet').seconds;
local rules = import 'rules.libsonnet';
local alertThresholds = import 'dashboard_thresholds.json';
local boards = {
  'captaindata-overview.json': import 'dashboards/captaindata-overview.json',
  'captaindata-workflow.json': import 'dashboards/captaindata-workflow.json',
};
local recording(group) = std.all([std.objectHas(rule, 'record') for rule in group.rules]);

// The dashboard with its runbook links (the hidden runbook_base_url variable) at `url`.
local withRunbooks(board, url) = board {
  templating+: {
    list: [
      if variable.name == 'runbook_base_url'
      then variable { query: url, current+: { text: url, value: url } }
      else variable
      for variable in super.list
    ],
  },
};

// The dashboard with each threshold step that is an alert threshold moved to the `_config` value.
local withAlertThresholds(board, moves, config) = board {
  local movesOf(panel) = [m for m in moves if std.objectHas(panel, 'title') && m.panel == panel.title],
  local moved(panel, steps) = [
    local move = [m for m in movesOf(panel) if m.step == index];
    if move == [] then steps[index] else steps[index] { value: seconds(config[move[0].knob]) }
    for index in std.range(0, std.length(steps) - 1)
  ],
  panels: [
    if movesOf(panel) == [] then panel
    else panel {
      fieldConfig+: { defaults+: { thresholds+: { steps: moved(panel, super.steps) } } },
    }
    for panel in super.panels
  ],
};

local dashboard(name, board, config) =
  withAlertThresholds(withRunbooks(board, config.runbookBaseUrl), alertThresholds[name], config);

(import 'config.libsonnet') + {
  local groups = rules($._config).groups,

  prometheusAlerts+:: {
    groups+: [group for group in groups if !recording(group)],
  },
  prometheusRules+:: {
    groups+: [group for group in groups if recording(group)],
  },
  grafanaDashboards+:: {
    [name]: dashboard(name, boards[name], $._config)
    for name in std.objectFields(boards)
  },
}
