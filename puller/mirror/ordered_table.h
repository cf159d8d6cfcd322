#pragma once

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pullagent::puller {

// A map that keeps its keys in insertion order, with the interface toml11 needs of a table
// type. hosts.toml tries its [host."..."] entries in the order the file lists them, which
// std::map and std::unordered_map forget. Tables in a hosts.toml have a handful of keys: a
// linear search is the fast way.
template <typename Key, typename Value, typename... Ignored>
class OrderedTable {
 public:
  using key_type = Key;
  using mapped_type = Value;
  using value_type = std::pair<const Key, Value>;
  using storage = std::vector<std::pair<Key, Value>>;
  using iterator = typename storage::iterator;
  using const_iterator = typename storage::const_iterator;
  using size_type = std::size_t;

  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }
  const_iterator cbegin() const { return items_.begin(); }
  const_iterator cend() const { return items_.end(); }
  size_type size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void clear() { items_.clear(); }

  iterator find(const Key& key) {
    return std::find_if(items_.begin(), items_.end(),
                        [&](const auto& item) { return item.first == key; });
  }
  const_iterator find(const Key& key) const {
    return std::find_if(items_.begin(), items_.end(),
                        [&](const auto& item) { return item.first == key; });
  }
  size_type count(const Key& key) const { return find(key) == end() ? 0 : 1; }
  bool contains(const Key& key) const { return count(key) != 0; }

  Value& at(const Key& key) {
    auto found = find(key);
    if (found == end())
      throw std::out_of_range("no such key in the table");
    return found->second;
  }
  const Value& at(const Key& key) const {
    auto found = find(key);
    if (found == end())
      throw std::out_of_range("no such key in the table");
    return found->second;
  }
  Value& operator[](const Key& key) {
    auto found = find(key);
    if (found != end())
      return found->second;
    items_.emplace_back(key, Value{});
    return items_.back().second;
  }

  template <typename Pair>
  std::pair<iterator, bool> insert(Pair&& item) {
    auto found = find(item.first);
    if (found != end())
      return {found, false};
    items_.emplace_back(std::forward<Pair>(item));
    return {std::prev(items_.end()), true};
  }
  template <typename K, typename V>
  std::pair<iterator, bool> emplace(K&& key, V&& value) {
    return insert(std::pair<Key, Value>(std::forward<K>(key), std::forward<V>(value)));
  }
  size_type erase(const Key& key) {
    auto found = find(key);
    if (found == end())
      return 0;
    items_.erase(found);
    return 1;
  }

  bool operator==(const OrderedTable& other) const { return items_ == other.items_; }
  bool operator!=(const OrderedTable& other) const { return !(*this == other); }

 private:
  storage items_;
};

}  // namespace pullagent::puller
