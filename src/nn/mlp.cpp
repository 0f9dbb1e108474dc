#include "symm/nn/mlp.h"

#include "symm/group/group.h"

namespace symm::nn {

eMLPImpl::eMLPImpl(eMLPOptions options_) : options(std::move(options_)) { reset(); }

void eMLPImpl::reset() {
  const auto& g = options.in_rep().group();
  TORCH_CHECK(g && options.out_rep().group(), "eMLP: in_rep and out_rep must be set");
  TORCH_CHECK(g == options.out_rep().group(), "eMLP: in_rep is of ", g->name(), " but out_rep of ",
              options.out_rep().group()->name());
  TORCH_CHECK(!options.hidden_units().empty(), "eMLP: hidden_units must hold at least one layer");
  TORCH_CHECK(options.dropout() >= 0 && options.dropout() < 1, "eMLP: dropout must be in [0, 1), got ", options.dropout());
  hidden_rep_ = hidden_regular("eMLP", g, options.hidden_rep());
  layers = register_module("layers", torch::nn::ModuleList());
  hidden_reps_.clear();
  auto linear = [&](const Representation& in, const Representation& out) {
    return eLinear(eLinearOptions(in, out).bias(options.bias()).init_scheme(options.init_scheme()));
  };
  Representation prev = options.in_rep();
  for (int64_t units : options.hidden_units()) {
    TORCH_CHECK(units > 0, "eMLP: hidden_units must be positive, got ", units);
    hidden_reps_.push_back(regular_copies(hidden_rep_, units));
    layers->push_back(linear(prev, hidden_reps_.back()));
    prev = hidden_reps_.back();
  }
  layers->push_back(linear(prev, options.out_rep()));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
}

void eMLPImpl::reset_parameters() {
  for (auto& layer : *layers) layer->as<eLinearImpl>()->reset_parameters();
}

torch::Tensor eMLPImpl::forward(const torch::Tensor& x) {
  check_features("eMLP", x, options.in_rep().size());
  auto h = x;
  const size_t last = layers->size() - 1;
  for (size_t i = 0; i < last; ++i) h = dropout->forward(options.activation()(layers[i]->as<eLinearImpl>()->forward(h)));
  return layers[last]->as<eLinearImpl>()->forward(h);
}

void eMLPImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eMLP(in=" << options.in_rep().name() << ", hidden=[";
  for (size_t i = 0; i < hidden_reps_.size(); ++i) stream << (i ? ", " : "") << hidden_reps_[i].size();
  stream << "], out=" << options.out_rep().name() << ", activation=" << options.activation().name() << ")";
}

iMLPImpl::iMLPImpl(iMLPOptions options_) : options(std::move(options_)) { reset(); }

void iMLPImpl::reset() {
  const auto& g = options.in_rep().group();
  TORCH_CHECK(g, "iMLP: in_rep is not set");
  TORCH_CHECK(options.out_dim() > 0, "iMLP: out_dim must be positive, got ", options.out_dim());
  TORCH_CHECK(!options.hidden_units().empty(), "iMLP: hidden_units must hold at least one layer");
  out_rep_ = Representation::trivial(g, static_cast<int>(options.out_dim()));
  // The backbone ends on the last hidden width; its output is then activated and pooled.
  std::vector<int64_t> hidden(options.hidden_units().begin(), options.hidden_units().end() - 1);
  const auto hidden_rep = hidden_regular("iMLP", g, options.hidden_rep());
  const auto pooled = regular_copies(hidden_rep, options.hidden_units().back());
  if (hidden.empty()) hidden.push_back(options.hidden_units().back());
  backbone = register_module("backbone", eMLP(eMLPOptions(options.in_rep(), pooled, hidden)
                                                  .activation(options.activation())
                                                  .dropout(options.dropout())
                                                  .bias(options.bias())
                                                  .init_scheme(options.init_scheme())
                                                  .hidden_rep(hidden_rep)));
  // Isotypic coordinates c = Qᵀh: irrep copy j owns a run of dim ψ_j coordinates.
  std::vector<int64_t> blocks;
  std::vector<uint8_t> trivial;
  for (int k : pooled.irreps()) {
    const auto& irrep = g->irrep(k);
    for (int i = 0; i < irrep.dim; ++i) blocks.push_back(static_cast<int64_t>(trivial.size()));
    trivial.push_back(irrep.is_trivial());
  }
  pooling_ = Constants({to_tensor(pooled.change_of_basis())});
  blocks_ = torch::tensor(blocks, torch::kLong);
  trivial_ = torch::tensor(std::vector<int64_t>(trivial.begin(), trivial.end()), torch::kLong).to(torch::kBool);
  head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(static_cast<int64_t>(trivial.size()),
                                                                            options.out_dim()).bias(options.bias())));
  reset_parameters();
}

void iMLPImpl::reset_parameters() {
  backbone->reset_parameters();
  const auto& s = options.init_scheme();
  torch::NoGradGuard no_grad;
  if (s == "xavier_normal") torch::nn::init::xavier_normal_(head->weight);
  else if (s == "xavier_uniform") torch::nn::init::xavier_uniform_(head->weight);
  else if (s == "kaiming_normal") torch::nn::init::kaiming_normal_(head->weight, 0.0, torch::kFanIn, torch::kLinear);
  else if (s == "kaiming_uniform") torch::nn::init::kaiming_uniform_(head->weight, 0.0, torch::kFanIn, torch::kLinear);
  else TORCH_CHECK(false, "iMLP: unknown init_scheme '", s, "': expected xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal");
  if (head->bias.defined()) head->bias.zero_();
}

torch::Tensor iMLPImpl::invariants(const torch::Tensor& h) {
  check_features("iMLP", h, backbone->out_rep().size(), "pooled features");
  const auto c = torch::matmul(h, pooling_.get(h)[0]);
  const auto blocks = blocks_.to(h.device()), trivial = trivial_.to(h.device());
  auto shape = h.sizes().vec();
  shape.back() = trivial.size(0);
  const auto zeros = torch::zeros(shape, h.options());
  const auto signed_sum = zeros.index_add(-1, blocks, c);   // the coordinate itself on trivial copies
  const auto square = zeros.index_add(-1, blocks, c * c);
  // ρ is orthogonal and acts on each irrep copy by an orthogonal ψ(g): the norm of the copy is invariant.
  return torch::where(trivial, signed_sum, torch::sqrt(square + 1e-12));
}

torch::Tensor iMLPImpl::forward(const torch::Tensor& x) {
  return head->forward(invariants(options.activation()(backbone->forward(x))));
}

void iMLPImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::iMLP(in=" << options.in_rep().name() << ", pooled=" << backbone->out_rep().size()
         << ", invariants=" << head->options.in_features() << ", out=" << options.out_dim() << ")";
}

}  // namespace symm::nn
