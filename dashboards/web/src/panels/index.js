// Chart types a declared panel may name in its "chart" field (see dashboards/README.md).

import * as barsCi from './bars-ci.js';
import * as belowTarget from './below-target.js';
import * as curve from './curve.js';
import * as forest from './forest.js';
import * as freshness from './freshness.js';
import * as headline from './headline.js';
import * as ingests from './ingests.js';
import * as note from './note.js';
import * as quarantine from './quarantine.js';
import * as rates from './rates.js';
import * as table from './table.js';
import * as tilemap from './tilemap.js';
import * as trend from './trend.js';

export const chartTypes = {
  'bars-ci': barsCi,
  'below-target': belowTarget,
  curve,
  forest,
  freshness,
  headline,
  ingests,
  note,
  quarantine,
  rates,
  table,
  tilemap,
  trend,
};
