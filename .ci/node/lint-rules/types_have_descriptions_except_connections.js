// graphql-schema-linter rule `types-have-descriptions-except-connections`:
// the built-in `types-have-descriptions`, except for Relay connection types.
//
// Why: async-graphql generates every `FooConnection` type itself
// (`async_graphql::connection::Connection`) and gives it no type
// description; the Relay connection spec defines what such a type is, and its
// fields (`edges`, `nodes`, `pageInfo`, `totalCount`) are described. Every
// other type, including the edges and `PageInfo`, must still have one.
'use strict';

const {
  TypesHaveDescriptions,
} = require('graphql-schema-linter/lib/rules/types_have_descriptions');

function isRelayConnection(node) {
  const fields = new Set((node.fields || []).map((f) => f.name.value));
  return (
    node.name.value.endsWith('Connection') &&
    fields.has('edges') &&
    fields.has('pageInfo')
  );
}

function TypesHaveDescriptionsExceptConnections(configuration, context) {
  const visitor = TypesHaveDescriptions(configuration, context);
  const checkObject = visitor.ObjectTypeDefinition;
  return {
    ...visitor,
    ObjectTypeDefinition(node) {
      if (!isRelayConnection(node)) {
        checkObject(node);
      }
    },
  };
}

module.exports = { TypesHaveDescriptionsExceptConnections };
