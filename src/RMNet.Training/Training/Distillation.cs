using static TorchSharp.torch;

namespace RMNet.Training;

/// <summary>
/// Knowledge distillation (Hinton et al., 2015): the student learns from the labels and from the teacher's output
/// distribution softened by a temperature T. Loss = (1 - w) CE(student, labels) + w T^2 KL(teacher_T || student_T);
/// the T^2 keeps the soft term's gradients on the scale of the hard term's.
/// </summary>
/// <param name="Teacher">The teacher's logits for a batch (run without gradients).</param>
/// <param name="Weight">w: the soft term's share of the loss, 0..1.</param>
/// <param name="Temperature">T: how much the distributions are softened.</param>
internal sealed record Distillation(Func<Tensor, Tensor> Teacher, double Weight, double Temperature = 4)
{
    /// <summary>The loss of a batch whose student logits are <paramref name="logits"/>.</summary>
    public Tensor Loss(Tensor logits, Tensor images, Tensor labels)
    {
        Tensor target;
        using (no_grad()) target = nn.functional.softmax(Teacher(images) / Temperature, 1);
        var logStudent = nn.functional.log_softmax(logits / Temperature, 1);
        var soft = (target * (target.clamp_min(1e-12).log() - logStudent)).sum(1).mean() * (Temperature * Temperature);
        return nn.functional.cross_entropy(logits, labels) * (1 - Weight) + soft * Weight;
    }
}
