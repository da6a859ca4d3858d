// graphql-schema-linter configuration, used by .ci/schema-check (CI) on
// schema.graphql. Every built-in rule runs except `types-have-descriptions`,
// which is replaced by a copy that exempts Relay connection types (see
// .ci/node/lint-rules/types_have_descriptions_except_connections.js for why).
module.exports = {
  schemaPaths: ['schema.graphql'],
  customRulePaths: ['.ci/node/lint-rules/*.js'],
  rules: [
    'arguments-have-descriptions',
    'defined-types-are-used',
    'deprecations-have-a-reason',
    'descriptions-are-capitalized',
    'enum-values-all-caps',
    'enum-values-have-descriptions',
    'enum-values-sorted-alphabetically',
    'fields-are-camel-cased',
    'fields-have-descriptions',
    'input-object-fields-sorted-alphabetically',
    'input-object-values-are-camel-cased',
    'input-object-values-have-descriptions',
    'interface-fields-sorted-alphabetically',
    'relay-connection-arguments-spec',
    'relay-connection-types-spec',
    'relay-page-info-spec',
    'type-fields-sorted-alphabetically',
    'types-are-capitalized',
    'types-have-descriptions-except-connections',
  ],
};
