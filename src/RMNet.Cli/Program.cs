using TorchSharp;
var x = torch.randn(2, 3);
Console.WriteLine(x.sum().item<float>());
