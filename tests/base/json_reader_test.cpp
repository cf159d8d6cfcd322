#include "base/json_reader.h"

#include <gtest/gtest.h>

#include <limits>

namespace pullagent {
namespace {

using nlohmann::json;

JsonReader readerOf(const json& value) {
  return JsonReader(value, "test doc");
}

TEST(ParseJson, NestingIsBoundedBeforeParsing) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto parsed = parseJson(deep, "manifest");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(parsed.error().message, "manifest: JSON nested deeper than 64 levels");
  // Brackets inside strings do not count; escaped quotes do not end a string.
  auto in_string = parseJson(R"({"a": "[[[[\"[[[[", "b": [[1]]})", "x", ErrorCode::kProtocol, 3);
  EXPECT_TRUE(in_string.ok());
  EXPECT_FALSE(parseJson("[[[[1]]]]", "x", ErrorCode::kProtocol, 3).ok());
}

TEST(ParseJson, InvalidJsonNamesTheDocumentAndOffset) {
  auto parsed = parseJson("{\"a\": tru}", "token answer", ErrorCode::kInvalidArgument);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(parsed.error().message.find("token answer: not valid JSON (at byte"),
            std::string::npos);
  EXPECT_FALSE(parseJson("", "x").ok());
  EXPECT_FALSE(parseJson("\"\xff\"", "x").ok());  // invalid UTF-8 inside a string
}

TEST(JsonReader, WrongTypesNameThePathAndShowAShortValue) {
  const json doc = json::parse(R"({"config": {"User": 12, "Env": ["A=1", null],
                                   "WorkingDir": "x\ny"}})");
  const JsonReader reader = readerOf(doc);
  auto user = reader["config"]["User"].string();
  ASSERT_FALSE(user.ok());
  EXPECT_EQ(user.error().message, "test doc: config.User: expected a string, got number 12");
  auto env = reader["config"]["Env"][1].string();
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().message, "test doc: config.Env[1]: missing (expected a string)");
  auto missing = reader["nope"]["deeper"].boolean();
  EXPECT_EQ(missing.error().message, "test doc: nope.deeper: missing (expected true or false)");
  auto dir = reader["config"]["WorkingDir"].integer();
  EXPECT_NE(dir.error().message.find("got string \"x\\ny\""), std::string::npos);
}

TEST(JsonReader, SecretValuesShowTheirTypeOnly) {
  const json doc = json::parse(R"({"value": ["hunter2"], "token": 1234567})");
  auto value = readerOf(doc)["value"].secret().string();
  EXPECT_EQ(value.error().message, "test doc: value: expected a string, got array");
  auto token = readerOf(doc).secret()["token"].string();
  EXPECT_EQ(token.error().message.find("1234567"), std::string::npos);
}

TEST(JsonReader, LongStringsAreCutInErrors) {
  const json doc = {{"a", std::string(100000, 'x')}};
  auto read = readerOf(doc)["a"].integer();
  ASSERT_FALSE(read.ok());
  EXPECT_LT(read.error().message.size(), 200u);
  EXPECT_NE(read.error().message.find("(100000 bytes)"), std::string::npos);
}

TEST(JsonReader, IntegersAreRangeChecked) {
  const json doc = json::parse(
      R"({"max": 9223372036854775807, "huge": 18446744073709551615, "neg": -1, "frac": 1.5,
          "big": 1e308, "zero": 0})");
  const JsonReader reader = readerOf(doc);
  EXPECT_EQ(reader["max"].integer().value(), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(reader["huge"].integer().ok());
  EXPECT_FALSE(reader["neg"].integer(0).ok());
  EXPECT_FALSE(reader["frac"].integer().ok());
  EXPECT_FALSE(reader["big"].integer().ok());
  EXPECT_FALSE(reader["zero"].integer(1, 10).ok());
  EXPECT_EQ(reader["zero"].integer(0, 10).value(), 0);
  EXPECT_EQ(reader["big"].number().value(), 1e308);
  EXPECT_FALSE(reader["absent"].optionalInteger().value().has_value());
}

TEST(JsonReader, OptionalValuesAcceptNullButNotWrongTypes) {
  const json doc = json::parse(R"({"a": null, "b": 5})");
  EXPECT_FALSE(readerOf(doc)["a"].optionalString().value().has_value());
  EXPECT_FALSE(readerOf(doc)["b"].optionalString().ok());
  EXPECT_FALSE(readerOf(doc)["b"].elements().ok());
  EXPECT_FALSE(readerOf(doc)["b"].members().ok());
  EXPECT_FALSE(readerOf(json(5))["x"].optionalString().value().has_value());
}

TEST(JsonReader, OptionalStringListsReadMissingAsEmpty) {
  const json doc = json::parse(R"({"a": ["x", "y"], "n": null, "bad": ["x", 1]})");
  EXPECT_EQ(readerOf(doc)["a"].optionalStrings().value(), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(readerOf(doc)["n"].optionalStrings().value().empty());
  EXPECT_TRUE(readerOf(doc)["absent"].optionalStrings().value().empty());
  auto bad = readerOf(doc)["bad"].optionalStrings();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "test doc: bad[1]: expected a string, got number 1");
}

TEST(JsonReader, MembersAndElementsCarryTheirPaths) {
  const json doc = json::parse(R"({"list": [{"k": 1}], "map": {"x.y": true}})");
  auto elements = readerOf(doc)["list"].elements();
  ASSERT_TRUE(elements.ok());
  EXPECT_EQ(elements->at(0)["k"].path(), "list[0].k");
  auto members = readerOf(doc)["map"].members();
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(members->at(0).first, "x.y");
  EXPECT_TRUE(members->at(0).second.boolean().value());
}

}  // namespace
}  // namespace pullagent
