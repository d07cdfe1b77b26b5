// Checks ExportCatalog's refusals (empty, over-long, NUL-bearing and duplicate names) and its
// lookups, including the empty name selecting the default (first) export.
#include "nbd/export_catalog.h"

#include <gtest/gtest.h>

#include <string>

#include "nbd/protocol.h"

namespace blockrep::nbd {
namespace {

TEST(ExportCatalog, EmptyCatalogFindsNothing) {
  ExportCatalog c;
  EXPECT_EQ(c.Find("disk0"), nullptr);
  EXPECT_EQ(c.Find(""), nullptr);
}

TEST(ExportCatalog, FindsByExactName) {
  ExportCatalog c;
  ASSERT_TRUE(c.Add({"disk0", "first", nullptr}).ok());
  ASSERT_TRUE(c.Add({"disk1", "second", nullptr}).ok());
  ASSERT_NE(c.Find("disk1"), nullptr);
  EXPECT_EQ(c.Find("disk1")->description, "second");
  EXPECT_EQ(c.Find("disk"), nullptr);
  EXPECT_EQ(c.Find("disk10"), nullptr);
  EXPECT_EQ(c.Find("DISK0"), nullptr);
}

TEST(ExportCatalog, EmptyNameSelectsFirstExport) {
  ExportCatalog c;
  ASSERT_TRUE(c.Add({"disk0", "", nullptr}).ok());
  ASSERT_TRUE(c.Add({"disk1", "", nullptr}).ok());
  EXPECT_EQ(c.Find(""), &c.exports()[0]);
}

TEST(ExportCatalog, EmptyNameIsRefused) {
  ExportCatalog c;
  EXPECT_EQ(c.Add({"", "", nullptr}).code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(c.exports().empty());
}

TEST(ExportCatalog, DuplicateNameIsRefused) {
  ExportCatalog c;
  ASSERT_TRUE(c.Add({"disk0", "a", nullptr}).ok());
  EXPECT_FALSE(c.Add({"disk0", "b", nullptr}).ok());
  ASSERT_EQ(c.exports().size(), 1u);
  EXPECT_EQ(c.exports()[0].description, "a");
}

TEST(ExportCatalog, NameOfMaxStringBytesIsAccepted) {
  ExportCatalog c;
  std::string name(kMaxStringBytes, 'n');
  ASSERT_TRUE(c.Add({name, "", nullptr}).ok());
  EXPECT_NE(c.Find(name), nullptr);
}

TEST(ExportCatalog, NameOverMaxStringBytesIsRefused) {
  ExportCatalog c;
  EXPECT_FALSE(c.Add({std::string(kMaxStringBytes + 1, 'n'), "", nullptr}).ok());
}

TEST(ExportCatalog, NameWithNulIsRefused) {
  ExportCatalog c;
  EXPECT_FALSE(c.Add({std::string("disk\0x", 6), "", nullptr}).ok());
}

}  // namespace
}  // namespace blockrep::nbd
