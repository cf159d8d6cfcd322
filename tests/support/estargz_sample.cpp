#include "tests/support/estargz_sample.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "puller/lazy/estargz_toc.h"
#include "tests/support/temp_dir.h"

namespace pullagent::testing {

std::filesystem::path EstargzSample::dir() {
  return std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/lazy/data";
}

std::string EstargzSample::blob(const std::string& name) {
  return readFile(dir() / (name + ".estargz"));
}

puller::Descriptor EstargzSample::descriptor(const std::string& name) {
  const auto facts = nlohmann::json::parse(readFile(dir() / (name + ".json")));
  puller::Descriptor layer;
  layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  layer.digest = puller::Digest::parse(facts.at("digest").get<std::string>()).value();
  layer.size = facts.at("size").get<int64_t>();
  layer.annotations[std::string(puller::estargz::kTocDigestAnnotation)] =
      facts.at("toc_digest").get<std::string>();
  return layer;
}

std::string EstargzSample::big() {
  std::string out;
  for (int i = 0; i < 2500; ++i)
    out.push_back(static_cast<char>((i * 7 + 3) % 251));
  return out;
}

int readErrno(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return errno;
  char buffer[64];
  errno = 0;
  const bool failed = ::read(fd, buffer, sizeof buffer) < 0;
  const int error = failed ? errno : 0;
  ::close(fd);
  return error;
}

}  // namespace pullagent::testing
