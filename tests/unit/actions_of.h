// What both cores' test harnesses ask of an action list: the actions of one
// kind, in order. The cores' Action types differ; the question does not.
#ifndef COHORT_TESTS_UNIT_ACTIONS_OF_H_
#define COHORT_TESTS_UNIT_ACTIONS_OF_H_

#include <variant>
#include <vector>

namespace cohort::testing {

template <typename T, typename Action>
std::vector<T> ActionsOf(const std::vector<Action>& out) {
  std::vector<T> r;
  for (const Action& a : out) {
    if (const T* t = std::get_if<T>(&a)) r.push_back(*t);
  }
  return r;
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_UNIT_ACTIONS_OF_H_
