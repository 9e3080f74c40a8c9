// The checkpoint files read back from hostile bytes: each damage to a .safetensors or a
// step_N.json is its own UserError naming the file and tensor or field, never another exception.
#include <fstream>
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/safetensors.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;
using graft::runtime::read_checkpoint_meta;
using graft::runtime::read_safetensors;
using graft::runtime::UserError;
using graft::test::has;
using graft::test::user_error;

namespace {

// A safetensors file from its parts: the 8-byte little-endian header length, the header text
// as given, then `data_bytes` bytes.
fs::path write_raw(const fs::path& file, const std::string& header, size_t data_bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  const uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((length >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
  return file;
}

// The message for `header` over `data_bytes` bytes of data.
std::string safetensors_error(const fs::path& dir, const std::string& header,
                              size_t data_bytes = 64) {
  const fs::path file = write_raw(dir / "damaged.safetensors", header, data_bytes);
  std::string message = user_error([&] { read_safetensors(file); });
  INFO(message);
  CHECK(has(message, "checkpoint " + file.string()));
  return message;
}

const char* const kFix = "the file is damaged: resume from another checkpoint";

}  // namespace

TEST_CASE("read_safetensors gives each damage of the offsets its own message") {
  const fs::path dir = graft::test::temp_dir("safetensors_offsets");
  // A sound file first: two tensors side by side.
  const float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {7, 8};
  graft::runtime::write_safetensors(dir / "good.safetensors", {{"a", {2, 3}, a}, {"b", {2}, b}},
                                    {{"format", "graft"}});
  const auto good = read_safetensors(dir / "good.safetensors");
  REQUIRE(good.tensors.size() == 2);
  CHECK(good.tensors.at("a").values[5] == 6.0f);
  CHECK(good.tensors.at("b").shape == std::vector<int64_t>{2});
  CHECK(good.metadata.at("format") == "graft");

  const std::string malformed = "tensor 'w': malformed data_offsets";
  for (const char* offsets : {"[8]", "[8, 4]", "[0, -4]", "[\"0\", 24]", "7", "[0, 24, 48]"}) {
    std::string m = safetensors_error(
        dir, std::string(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":)") + offsets + "}}");
    CHECK(has(m, malformed));
    CHECK(has(m, "expected two byte offsets [begin, end] with begin <= end"));
    CHECK(has(m, kFix));
  }

  std::string outside =
      safetensors_error(dir, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[48,72]}})", 64);
  CHECK(has(outside,
            "tensor 'w': data_offsets [48, 72] lie outside the file: its data "
            "section holds 64 bytes"));
  CHECK(has(outside, kFix));

  std::string size =
      safetensors_error(dir, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})");
  CHECK(has(size, "tensor 'w': shape [2, 3] needs 24 bytes but data_offsets [0, 16] hold 16"));
  CHECK(!has(size, "outside"));

  std::string overlap =
      safetensors_error(dir, R"({"first":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("second":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},)"
                             R"("third":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})");
  CHECK(has(overlap, "tensors 'first' (bytes 0..16) and 'third' (bytes 8..24) overlap"));
  CHECK(has(overlap, kFix));
  // Ranges that only touch, and empty tensors anywhere, are fine.
  write_raw(dir / "touching.safetensors",
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
            R"("c":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}})",
            16);
  CHECK(read_safetensors(dir / "touching.safetensors").tensors.at("c").values.empty());
}

TEST_CASE("read_safetensors refuses hostile shapes and ill-typed headers as UserErrors") {
  const fs::path dir = graft::test::temp_dir("safetensors_hostile");
  const auto entry = [](const std::string& shape, const std::string& offsets = "[0,16]") {
    return R"({"w":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
  };
  CHECK(has(safetensors_error(dir, entry("[-1,4]")),
            "tensor 'w': \"shape\" holds -1, not a non-negative integer size"));
  CHECK(has(safetensors_error(dir, entry("[2.5]")), "\"shape\" holds 2.5"));
  CHECK(has(safetensors_error(dir, entry("[4294967296,4294967296]")),
            "shape [4294967296, 4294967296] has more elements than 64 bits can count"));
  CHECK(has(safetensors_error(dir, entry("[4611686018427387904]")),
            "has more elements than 64 bits can count"));  // 2^62 floats: 2^64 bytes
  CHECK(has(safetensors_error(dir, entry("[18446744073709551615]")), "not a non-negative"));
  CHECK(has(safetensors_error(dir, entry("\"2x2\"")), "\"shape\" is \"2x2\", not an array"));

  CHECK(has(safetensors_error(dir, "[1,2]"), "header is an array of 2 items, not a JSON object"));
  CHECK(has(safetensors_error(dir, "{\"w\""), "header is not valid JSON"));
  CHECK(has(safetensors_error(dir, R"({"w":1e999})"), "header is not valid JSON"));
  CHECK(
      has(safetensors_error(dir, R"({"w":5})"), "tensor 'w' is described by 5, not a JSON object"));
  CHECK(has(safetensors_error(dir, R"({"w":{"dtype":"F32","data_offsets":[0,16]}})"),
            "tensor 'w' has no \"shape\""));
  CHECK(has(safetensors_error(dir, R"({"w":{"dtype":"F32","shape":[4]}})"),
            "tensor 'w' has no \"data_offsets\""));
  CHECK(has(safetensors_error(dir, R"({"w":{"shape":[4],"data_offsets":[0,16]}})"),
            "tensor 'w' has no \"dtype\""));
  CHECK(has(safetensors_error(dir, R"({"w":{"dtype":32,"shape":[4],"data_offsets":[0,16]}})"),
            "tensor 'w': \"dtype\" is 32, not a string"));
  CHECK(has(safetensors_error(dir, R"({"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})"),
            "graft reads float32 (F32) checkpoints"));
  CHECK(has(safetensors_error(dir, R"({"__metadata__":{"step":5}})"),
            "__metadata__ 'step' is 5, not a string"));
  CHECK(has(safetensors_error(dir, R"({"__metadata__":[]})"),
            "__metadata__ is an array of 0 items, not a JSON object"));
  // A header length past the end, and a file too short to hold one.
  std::ofstream(dir / "short.safetensors", std::ios::binary) << "abc";
  CHECK(has(user_error([&] { read_safetensors(dir / "short.safetensors"); }), "truncated"));

  // Every byte of a sound header replaced by each of a few troublesome ones: a UserError or a
  // file that reads, never another exception.
  const std::string sound = R"({"__metadata__":{"format":"graft"},)"
                            R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  int refused = 0;
  for (size_t i = 0; i < sound.size(); ++i)
    for (char c : {'-', '9', '"', '{', '[', ']', ',', '\0', '\xff'}) {
      std::string header = sound;
      header[i] = c;
      write_raw(dir / "flipped.safetensors", header, 16);
      try {
        read_safetensors(dir / "flipped.safetensors");
      } catch (const UserError&) {
        ++refused;
      }
    }
  CHECK(refused > 0);
}

TEST_CASE("read_checkpoint_meta tells a wrong type from a missing field") {
  const std::string where = "checkpoint runs/x/step_8.json";
  const std::string sound =
      R"({"step": 8, "epoch": 1, "batch_in_epoch": 3, "seed": 18446744073709551615,
          "optimizer_steps": 8, "optimizer_state": ["velocity"], "tensors": "step_8.safetensors"})";
  const graft::runtime::CheckpointMeta meta = read_checkpoint_meta(sound, where);
  CHECK(meta.position.step == 8);
  CHECK(meta.position.epoch == 1);
  CHECK(meta.position.batch_in_epoch == 3);
  CHECK(meta.position.seed == UINT64_MAX);
  CHECK(meta.optimizer_steps == 8);

  const auto error = [&](const std::string& text) {
    std::string message = user_error([&] { read_checkpoint_meta(text, where); });
    INFO(message);
    CHECK(has(message, where));
    CHECK(has(message, kFix));
    return message;
  };
  CHECK(has(error("{\"step\": 8,"), where + " is not valid JSON"));
  CHECK(has(error("[8]"), where + " holds an array of 1 item, not a JSON object"));
  CHECK(has(error(""), "is not valid JSON"));
  CHECK(has(error("1e999"), "is not valid JSON"));
  const auto with = [&](const std::string& key, const std::string& value) {
    std::string text = sound;
    const size_t at = text.find("\"" + key + "\": ") + key.size() + 4;
    text.replace(at, text.find_first_of(",}", at) - at, value);
    return text;
  };
  CHECK(has(error(with("step", "\"8\"")), "field \"step\" is \"8\", not a non-negative integer"));
  CHECK(has(error(with("epoch", "-1")), "field \"epoch\" is -1, not a non-negative integer"));
  CHECK(has(error(with("batch_in_epoch", "1.5")), "field \"batch_in_epoch\" is 1.5"));
  CHECK(has(error(with("optimizer_steps", "null")), "field \"optimizer_steps\" is null"));
  CHECK(has(error(with("step", "9223372036854775808")), "not a non-negative integer below 2^63"));
  CHECK(has(error(with("seed", "[1]")), "field \"seed\" is an array of 1 item"));
  std::string missing = sound;
  missing.replace(missing.find("\"epoch\": 1, "), 12, "");
  CHECK(has(error(missing), where + " lacks the field \"epoch\""));

  // Every prefix of the sound text, and every byte replaced: a UserError or a reading.
  for (size_t n = 0; n < sound.size(); ++n)
    CHECK_THROWS_AS(read_checkpoint_meta(sound.substr(0, n), where), UserError);
  for (size_t i = 0; i < sound.size(); ++i)
    for (char c : {'-', '9', '"', '{', '[', '.', 'e', '\0', '\xc3'}) {
      std::string text = sound;
      text[i] = c;
      try {
        read_checkpoint_meta(text, where);
      } catch (const UserError&) {
      }
    }
}
